#!/usr/bin/env python3
"""Tokenizer goldens for the Go tokenizer, from the reference: transformers 4.31.0's slow LlamaTokenizer.

The reference tokenizer is built the way NExT-Chat ends up with it (MODEL_SPEC §2.1, §6.3):
  * `LlamaTokenizer(vocab_file, legacy=False)`; then `sanitize_special_tokens()`, which `from_pretrained` runs
    last and which registers <s>, </s>, <unk> as no-split tokens (a bare constructor does not);
  * `tokenizer.pad_token = tokenizer.unk_token` (`build_nextchat.py`, version v1);
  * `initialize_vision_tokenizer` (`nextchat_base.py`): `add_tokens(["<im_patch>"], special_tokens=True)`, then
    `add_tokens(["<im_start>", "<im_end>", "<at>", "<boxes>"], special_tokens=True)` -> ids 32000..32004.
Encoding is `tokenizer(text).input_ids` (BOS prepended, no EOS); decoding is `tokenizer.decode(ids,
skip_special_tokens=...)` as NExT-Chat's `batch_decode` does. TOKENIZER_NOTES.md explains the algorithm.

Output (all deterministic: fixed seeds, no iteration over sets, fixed key order, "\\n" line ends):
  encode.jsonl   {"tag", "text", "ids", "pieces"[, "tokens"]} per line; "tokens" = tokenizer.tokenize(text),
                 present only when it differs from pieces[1:] (a piece string that is not in the vocabulary
                 and became <unk>, see TOKENIZER_NOTES.md).
  decode.jsonl   {"tag", "ids", "text", "text_keep_special"} per line.
  manifest.json  versions, model sha256, construction, counts, file hashes, the command.

Usage: python tools/reference/tokenizer_goldens.py --tokenizer PATH/llama.model --out testdata/golden/tokenizer
"""

import argparse
import hashlib
import json
import os
import platform
import random
import sys

SEED = 20240205  # NExT-Chat snapshot date; any fixed value works, changing it changes every generated case

ADDED_TOKENS = ["<im_patch>", "<im_start>", "<im_end>", "<at>", "<boxes>"]
IM_PATCH, IM_START, IM_END, AT, BOXES = ADDED_TOKENS
BOX_GROUP = AT + " " + BOXES  # mllm/dataset/root.py BOXES_PLACEHOLDER
SPECIAL_LITERALS = ["<s>", "</s>", "<unk>"]

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
          "detailed, and polite answers to the user's questions.")

# Every character Python's str.isspace() accepts: the whitespace 4.31 strips next to the 5 added tokens.
PY_WHITESPACE = ["\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ", "\x85", "\xa0", "\u1680",
                 "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009",
                 "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
# Look like whitespace but are not str.isspace(): never stripped.
NOT_WHITESPACE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\u2581"]

# Expressions / templates in the style of config/_base_/dataset/template/{REC,REG,flickr30k}.json.
EXPRESSIONS = [
    "the red dog", "a man in a blue shirt", "the woman on the left", "the second car from the right",
    "the cat sleeping on the sofa", "a small boy holding an umbrella", "the tallest building", "the white horse",
    "the person wearing glasses", "the banana closest to the camera", "a green bottle", "the dog's tail",
    "the guy in the middle", "the 3rd chair", "the laptop", "the sign that says STOP", "two zebras",
    "the giraffe eating leaves", "the pizza slice with olives", "the empty glass", "the bird in flight",
    "a clock showing 10:30", "the motorcycle parked near the door", "the kid's red backpack",
    "the café table", "the surfer riding a wave", "the teddy bear", "the elephant's trunk",
    "the boat with number 42", "the left-most sheep",
]
REC_TEMPLATES = [
    "Where is {e}?", "Where is {e} in the image?", "Where is {e} in image?", "Can you find {e}?",
    "Can you find {e} in the image?", "Can you detect {e} in image?", "Can you locate {e}?",
    "Can you locate {e} in the image?", "Please find {e}.", "Please detect {e} in the image?",
    "Please locate {e} in image?", "Find {e}.", "Detect {e} in the image?", "Locate {e}?", "Locate {e} in image",
    "Where is {e} in the image", "Can you find {e} in image", "Please locate {e}", "Detect {e}", "Find {e} in the image",
]
REG_TEMPLATES = [
    "Can you describe {o}?", "Please describe {o}.", "Describe {o}.", "What is {o}.",
    "For the given image, can you provide a unique description of the area {o}?",
    "Please generate a distinguishing description for the region {o} in the image.",
    "In the photo, how would you describe the selected area {o} uniquely?",
    "Given the image, I'd like you to describe the area {o} in a distinguishing manner.",
    "In image, describe the selected area {o}, making sure your description is unique.",
    "What features distinguish the specified bounding box {o} in image from other areas?",
    "What is region [0]?", "What is the relationship between {o} and {o}?",
]
GC_TEMPLATES = [
    "Can you describe the image and include object locations?", "Can you describe the image and detect objects?",
    "Please explain what's happening in the photo and detect items.",
    "What do you see in this image? Please mention the object locations.",
    "Tell me about the picture and include position info for objects.",
    "Analyze this picture for me and provide coordinates for the items you discuss.",
    "I need a breakdown of what is happening in the image, and please include the bounding box information.",
]
VQA_QUESTIONS = [
    "Is there a dog in the image?", "What color is the car?", "How many people are there?",
    "Is the man wearing a hat? Please mention related object locations.",
    "What is the woman holding? Please mention related object locations.", "Is there a snowboard in the image?",
]
PHRASES = [
    "A man", "a horse", "Two dogs", "a frisbee", "the grass", "A woman", "a red umbrella", "the street",
    "A little girl", "a kite", "the beach", "Several people", "a table", "a cake with candles", "the sky",
]
VERBS = ["rides", "plays with", "stands on", "walks along", "is holding", "sits next to", "looks at", "flies over"]
ANSWER_WORDS = ["Answer:", "The answer is yes .", "The answer is no .", "There are", "which", "would", "were",
                "their", "inform", "different", "following", "However,", "Therefore", "because", "and", "in",
                "the", "image", "is", "located", "at", "on", "left", "right", "top", "bottom", "yes", "no", "."]

# Character pool for the random mixtures.
ASCII_PRINTABLE = [chr(c) for c in range(0x20, 0x7f)]
UNICODE_CHARS = [
    "é", "è", "ê", "ë", "á", "à", "â", "ä", "ã", "å", "ç", "ñ", "ö", "ø", "ü", "ß", "œ", "Æ", "É", "Ü", "Ñ",
    "ı", "ł", "ž", "ş", "ğ", "ő", "ű", "ą", "ę",
    "中", "文", "字", "国", "人", "日", "本", "語", "的", "一", "龍", "鬱", "𠀋", "𪚥",
    "あ", "い", "う", "カ", "タ", "ナ", "ー", "。", "、", "「", "」",
    "한", "국", "어", "가", "힣",
    "ا", "ل", "ع", "ر", "ب", "ي", "ة", "ّ", "َ",
    "ह", "ि", "न", "्", "द", "ी", "क", "ष",
    "α", "β", "γ", "Ω", "λ", "п", "р", "и", "в", "е", "т", "Ж", "ש", "ל", "ו", "ם", "ก", "ข", "ไ",
    "\u0301", "\u0308", "\u0327", "\u20dd", "\u0336",
    "😀", "😂", "👍", "🏽", "❤", "\ufe0f", "🇺", "🇸", "👨", "\u200d", "👩", "👧", "🤖", "🎉", "🦄", "🧪",
    "𝔘", "𝕏", "𓀀", "🜁", "\ue000", "\uf8ff", "\ufffd", "\U0010fffd", "\U000e0001", "℃", "№", "™", "©", "®",
    "€", "£", "¥", "₹", "½", "¼", "²", "³", "µ", "°", "±", "×", "÷", "—", "–", "…", "“", "”", "‘", "’", "«", "»",
    "•", "†", "‡", "§", "¶", "←", "→", "↑", "↓", "∀", "∂", "∑", "√", "∞", "≠", "≤", "≥", "■", "□", "▲", "●", "★",
    "\x00", "\x01", "\x07", "\x1b", "\x7f", "\x80", "\x9f",
]
WORDS = ["the", "a", "dog", "red", "Where", "is", "in", "image", "Answer", "USER", "ASSISTANT", "hello", "world",
         "Hello", "HELLO", "inform", "would", "their", "don't", "it's", "I'm", "New York", "e-mail", "x2", "v1.5",
         "123", "3.14", "2024-02-05", "10:30", "$9.99", "50%", "#hashtag", "@user", "https://example.com/a?b=c",
         "foo_bar", "camelCase", "snake_case_name", "UPPER", "über", "naïve", "東京", "Москва", "مرحبا", "नमस्ते"]
NEAR_MISSES = ["<at", "at>", "<AT>", "<At>", "<at >", "< at>", "<a t>", "<at/>", "</at>", "<boxes", "boxes>",
               "<box>", "<Boxes>", "<boxes >", "<im_start", "im_start>", "<im_end", "<im_patch", "<im_patches>",
               "<im-start>", "<image>", "<s", "</s", "<s >", "< s>", "<S>", "</S>", "<UNK>", "<unk", "<pad>", "<", ">",
               "</", "/>", "<<", ">>", "<>", "<0x41>", "▁"]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_tokenizer(model_path):
    """The reference tokenizer: nextchat_ref.tokenizer.load_tokenizer, the one construction the model reference
    uses too (LlamaTokenizer(legacy=False), sanitize_special_tokens(), pad = unk, the two add_tokens calls)."""
    from transformers.utils import logging as hf_logging

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from nextchat_ref.tokenizer import load_tokenizer

    hf_logging.set_verbosity_error()
    return load_tokenizer(model_path)


def check_reference(tok):
    """Facts MODEL_SPEC states; stop if the reference disagrees (the goldens would then need a new look)."""
    assert tok.legacy is False
    assert [tok.convert_tokens_to_ids(t) for t in ADDED_TOKENS] == [32000, 32001, 32002, 32003, 32004]
    assert len(tok) == 32005
    assert sorted(set(tok.all_special_ids)) == [0, 1, 2], tok.all_special_ids
    expect = {
        "Answer: <at> <boxes> .</s>": [1, 673, 29901, 32003, 32004, 29889, 2],  # generate_rec's hard-coded tail
        "USER": [1, 3148, 1001],
        "ASSISTANT": [1, 319, 1799, 9047, 13566],
        IM_END + "Where": [1, 32002, 11921],
        IM_END + " Where": [1, 32002, 11921],
        "Where": [1, 6804],
        "": [1],
    }
    for text, ids in expect.items():
        got = tok(text).input_ids
        assert got == ids, (text, got, ids)
    for piece, pid in [("▁Answer", 673), (":", 29901), ("▁US", 3148), ("ER", 1001), ("▁A", 319), ("SS", 1799),
                       ("IST", 9047), ("ANT", 13566), ("Where", 11921), ("▁Where", 6804), (".", 29889),
                       ("▁.", 869)]:
        assert tok.convert_tokens_to_ids(piece) == pid, piece


def dedup(cases):
    seen = {}
    for tag, text in cases:
        if text not in seen:
            seen[text] = tag
    return [(tag, text) for text, tag in seen.items()]


def image_block(n):
    return IM_START + IM_PATCH * n + IM_END


def conversation(turns, image_n):
    """Vicuna v1.1 prompt (MODEL_SPEC §6.1). turns: [(user, assistant or None)]; <image> expanded if image_n."""
    out = SYSTEM + " "
    for i, (user, answer) in enumerate(turns):
        if i == 0:
            user = "<image> " + user
        out += "USER: " + user + " "
        out += "ASSISTANT: " + answer + "</s>" if answer is not None else "ASSISTANT:"
    if image_n:
        out = out.replace("<image>", image_block(image_n))
    return out


def box_groups(k):
    return " ".join([BOX_GROUP] * k)


def targeted_cases(sp_unk_words):
    c = []
    add = lambda tag, texts: c.extend((tag, t) for t in texts)

    add("empty", [""])
    add("char", ASCII_PRINTABLE)
    add("char", ["\t", "\n", "\r", "\x0b", "\x0c", "\x00", "\x7f", "é", "中", "😀", "▁", "\xa0", "\u3000", "\u200b",
                 "\ufeff", "\ufffd", "\u0301"])
    add("space", [" " * n for n in range(1, 9)])
    add("space", ["a" + " " * n + "b" for n in range(1, 9)])
    add("space", [" " * n + "hello" for n in range(1, 9)])
    add("space", ["hello" + " " * n for n in range(1, 9)])
    add("space", ["\n" * n for n in range(1, 5)] + ["\t" * n for n in range(1, 4)])
    add("space", ["\r\n", "line1\nline2", "a\n\nb", " \n a", "\t hello", "hello\t", "a\tb", "a \t\n b", "\r",
                  "a\rb", "\n hello", "hello \n", "  two  spaces  ", " x ", "x \n\n y", "  \n", "\n  ", "a\u3000b",
                  "a\xa0b", "\xa0hello", "hello\xa0", "\u2003x", "a\x1cb", "\x85", "tab\tand space ", "▁hello",
                  "hello▁world", "▁▁x", " ▁ ", "a▁ b"])
    add("digit", ["0", "7", "10", "42", "123", "2024", "1234567890", "3.14159", "-42", "+7", "1,000,000", "0x1F",
                  "1e-5", "[0.12, 0.34, 0.56, 0.78]", "(12,34),(56,78)", "v1.5", "7B", "x100", "100x", "１２３",
                  "٣٤٥", "१२३", "²³", "½"])
    add("punct", [".", ",", "!", "?", "...", "…", "—", "–", "-", "--", "“quoted”", "\"quoted\"", "'s", "(a)",
                  "[0]", "{x}", "<", ">", "<>", "</", "/>", "<<", ">>", "#", "@", "$", "%", "^", "&", "*", "~", "`",
                  "\\", "/", "|", ":", ";", "::", "==", "!=", "->", "=>", "a.b", "a, b", "Hello, world!",
                  "What?!", "end.", ".start", "'", "''", "\"", "_", "__init__"])
    add("unicode", ["café", "naïve", "Ünïcödé", "Straße", "中文", "日本語のテキスト", "한국어", "العربية",
                    "हिन्दी", "e\u0301", "a\u0308o\u0308", "Ελληνικά", "Русский", "עברית", "ไทย", "ᚠᛇᚻ",
                    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "👍🏽", "🇺🇸", "👨\u200d👩\u200d👧", "🤖 robot", "\ue000", "\U0010fffd", "𓀀",
                    "ab\u200bcd", "\u200d", "\ufeffhello", "\x1b[31mred\x1b[0m", "Ǆ", "ﬁ", "Ⅻ", "㎏", "ｈｅｌｌｏ",
                    "Zürich café 東京 😀", "I ❤\ufe0f NY", "e\u0301\u0301\u0301", "🦄🦄🦄", "\x80\x9f"])
    add("long", ["a" * 100, "x" * 500, "supercalifragilisticexpialidocious",
                 "pneumonoultramicroscopicsilicovolcanoconiosis", "ab" * 150, "1" * 64, "😀" * 20, "中" * 50,
                 "https://www.example.com/some/really/long/path/with_many_segments?query=value&other=thing#frag",
                 "Lopadotemachoselachogaleokranioleipsanodrimhypotrimmatosilphiokarabomelitokatakechymenokichl"
                 "epikossyphophattoperisteralektryonoptekephalliokigklopeleiolagoiosiraiobaphetraganopterygon",
                 "the " * 100, ("hello world " * 40).strip()])

    # The 5 added tokens: alone, with every kind of surrounding whitespace, adjacent, between words.
    add("added", ADDED_TOKENS)
    for t in ADDED_TOKENS:
        add("added", [" " + t, t + " ", " " + t + " ", "  " + t + "  ", "\n" + t + "\n", "\t" + t, "a" + t + "b",
                      "a " + t + " b", "a  " + t + "  b", "x" + t, t + "x", t + t, t + " " + t, t + "\n" + t])
    for a in ADDED_TOKENS:
        for b in ADDED_TOKENS:
            add("added_pair", [a + b, a + " " + b])
    add("added", ["<at><boxes>", "<at> <boxes>", " <im_start>", "x  <boxes>  y", "<im_start><im_patch><im_end>",
                  "<at>.", "<at> .", "<boxes>?", "<boxes>,", "<boxes> ,", "<at>1", "<at> 1", "<at>12", "<at>中",
                  "<at> 中", "<at>😀", "<at> 😀", "<at>\u3000x", "<at>\xa0x", "<at>\x1cx", "<at>\x85x",
                  "<at>\u2028x", "<at>\u200bx", "<at>\ufeffx", "<at>▁x", "<at> ▁x", "▁<at>", "<at>\n\nHello",
                  "x\u3000<at>", "x\xa0<boxes>", "x\u200b<boxes>", "<boxes>Where", "<boxes> Where", "<boxes>where",
                  "<im_end>Where is the dog?", "<im_end> Where is the dog?", "<at>USER", "<at>ASSISTANT:",
                  "<at> <boxes> <at> <boxes>", "<at> <boxes>, <at> <boxes> and <at> <boxes>.",
                  "A man<at> <boxes> rides a horse<at> <boxes> .", "<at>-", "<at>'s", "<at>\"x\"", "<at>(1)",
                  "<boxes>\t\tx", "<boxes>   ", "   <boxes>", "\n\n<at>", "<at>\r\n", "<at> \u3000 x"])
    # Literal <s>, </s>, <unk>: AddedToken(lstrip=False, rstrip=False), so no stripping around them.
    add("special", SPECIAL_LITERALS + ["<s>hi", "<s> hi", "hi<s>", "hi <s>", "hi</s>", "hi </s>", "</s>USER",
                                       "</s> USER", "</s>  USER", "a</s>b", "<unk>x", "x<unk>", "<unk> x", "<s><s>",
                                       "</s></s>", "<s></s><unk>", "</s>\thi", "</s>\nhi", "</s>   hi", "<at></s>",
                                       "</s><at>", "<at> </s> <boxes>", "<boxes> </s>", "</s> <boxes>", "<s> <at>",
                                       "</s>1", "</s>😀", "</s>would", "</s> would", "<unk>would", "<s>would",
                                       "Hello</s>", "Answer: <at> <boxes> .</s>USER: thanks ASSISTANT:"])
    # Strings that look like added tokens but are not (plus overlaps that exercise the trie's longest match).
    add("near_miss", NEAR_MISSES + ["<at<at>>", "<<at>>", "<<at>", "<at>>", "<im_<at>", "<im_sta<im_end>",
                                    "<im_start<im_end>", "<im_patch_>", "<im_end><im_end", "<<s>>", "<</s>",
                                    "<s/>", "</s>>", "<<unk>", "<image> hello", "<im_start>>", "<boxes<boxes>",
                                    "<box<boxes>es>", "<a<at>t>", "<im_patch<im_patch>", "<at >x", "< at> x"])
    # Pieces quoted in MODEL_SPEC, and REC / region snippets.
    add("known", ["Answer: <at> <boxes> .", "Answer: <at> <boxes> .</s>", "USER", "ASSISTANT", "USER:",
                  "ASSISTANT:", " USER:", "USER: hi ASSISTANT:", "Where", " Where", "Where is the red dog in the image?",
                  "<im_end> Where is the red dog in the image?", "What is region [0]?", "The answer is yes .",
                  "Can you describe <at> <boxes>?",
                  "Please generate a distinguishing description for the region <at> <boxes> in the image."])
    # After an added token, sentencepiece's leading "▁" is removed from the first piece; when what is left is
    # not a piece of the vocabulary it becomes <unk> (id 0).
    for w in sp_unk_words:
        add("unk_strip", [AT + w, BOXES + " " + w + " more", "</s>" + w])
    return c


def conversation_cases(rng):
    c = []
    # Hand-picked: single-turn, N=576 (few, long) and N=16; multi-turn; unexpanded <image>.
    c.append(("conv576", conversation([("Where is the red dog in the image?", None)], 576)))
    c.append(("conv576", conversation([("Can you describe <at> <boxes>?", None)], 576)))
    c.append(("conv576", conversation([("Where is the red dog in the image?", "Answer: <at> <boxes> ."),
                                       ("What is it doing?", None)], 576)))
    c.append(("conv576", conversation([("Can you describe the image and include object locations?",
                                        "A man<at> <boxes> rides a horse<at> <boxes> .")], 576)))
    c.append(("conv576", conversation([("What is region [0]?", None)], 576)))
    c.append(("conv_raw", conversation([("Where is the red dog in the image?", None)], 0)))
    c.append(("conv_raw", conversation([("Where is the red dog in the image?", "Answer: <at> <boxes> .")], 0)))
    c.append(("conv16", conversation([("Where is the red dog in the image?", None)], 16)))
    c.append(("conv16", conversation([("Where is the red dog in the image?", None)], 16) + " Answer: <at> <boxes> .</s>"))
    c.append(("conv16", conversation([("hi", "Hello! How can I help you?"), ("Where is the cat?", None)], 16)))
    c.append(("conv16", conversation([("q1", "a1"), ("q2", "a2"), ("q3", None)], 16)))
    c.append(("conv1", conversation([("Where is the red dog in the image?", None)], 1)))
    c.append(("conv0", conversation([("Where is the red dog in the image?", None)], 0).replace("<image> ", "")))
    # Generated: random templates, expressions, region groups, multi-turn; image of 16 patches (or 1..4).
    for _ in range(420):
        kind = rng.random()
        k = rng.randint(1, 3)
        if kind < 0.4:
            user = rng.choice(REC_TEMPLATES).format(e=rng.choice(EXPRESSIONS))
            answer = "Answer: " + box_groups(k) + " ."
        elif kind < 0.65:
            user = rng.choice(REG_TEMPLATES).format(o=box_groups(k))
            answer = rng.choice(EXPRESSIONS).capitalize() + "."
        elif kind < 0.85:
            user = rng.choice(GC_TEMPLATES)
            answer = grounded_caption(rng)
        else:
            user = rng.choice(VQA_QUESTIONS)
            answer = rng.choice(["The answer is yes .", "The answer is no .", grounded_caption(rng)])
        turns = [(user, answer)]
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            turns.append((rng.choice(REC_TEMPLATES).format(e=rng.choice(EXPRESSIONS)),
                          "Answer: " + box_groups(rng.randint(1, 2)) + " ."))
        last_open = rng.random() < 0.6
        if last_open:
            turns[-1] = (turns[-1][0], None)
        n = rng.choice([16, 16, 16, 1, 2, 4])
        c.append(("conv16" if n == 16 else "conv_small", conversation(turns, n)))
    return c


def grounded_caption(rng):
    parts = []
    for _ in range(rng.randint(1, 3)):
        sep = rng.choice(["", "", " "])  # flickr30k style puts the group right after the phrase
        parts.append(rng.choice(PHRASES) + sep + box_groups(rng.randint(1, 2)) + " " + rng.choice(VERBS))
    return " ".join(parts) + " " + rng.choice(PHRASES).lower() + rng.choice([BOX_GROUP, " " + BOX_GROUP, ""]) + " ."


def answer_cases(rng, n):
    c = []
    for _ in range(n):
        r = rng.random()
        if r < 0.4:
            c.append(("answer_gc", grounded_caption(rng)))
        elif r < 0.6:
            c.append(("answer_rec", "Answer: " + box_groups(rng.randint(1, 4)) + rng.choice([" .", ".", " .</s>", ""])))
        else:
            words = []
            for _ in range(rng.randint(2, 14)):
                w = rng.choice(ANSWER_WORDS + [BOX_GROUP, BOX_GROUP, AT, BOXES])
                words.append(w)
            joins = [rng.choice([" ", " ", " ", "", "  ", "\n"]) for _ in words]
            c.append(("answer_mix", "".join(w + j for w, j in zip(words, joins)).rstrip(" ")))
    return c


def random_mixture(rng):
    segs = []
    for _ in range(rng.randint(1, 25)):
        r = rng.random()
        if r < 0.22:
            segs.append(rng.choice(WORDS))
        elif r < 0.36:
            segs.append(rng.choice(ADDED_TOKENS + [BOX_GROUP]))
        elif r < 0.42:
            segs.append(rng.choice(SPECIAL_LITERALS))
        elif r < 0.50:
            segs.append(rng.choice(NEAR_MISSES))
        elif r < 0.66:
            segs.append(rng.choice(PY_WHITESPACE + NOT_WHITESPACE + [" ", " ", "  ", "\n"]) * rng.randint(1, 3))
        elif r < 0.80:
            segs.append("".join(rng.choice(UNICODE_CHARS) for _ in range(rng.randint(1, 4))))
        elif r < 0.90:
            segs.append("".join(rng.choice(ASCII_PRINTABLE) for _ in range(rng.randint(1, 6))))
        else:
            segs.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
    joins = [rng.choice(["", " ", " ", "  "]) for _ in segs]
    return "".join(s + j for s, j in zip(segs, joins))


def random_chars(rng):
    pool = rng.choice([ASCII_PRINTABLE, UNICODE_CHARS, PY_WHITESPACE + ASCII_PRINTABLE[:20],
                       ASCII_PRINTABLE + UNICODE_CHARS + PY_WHITESPACE + NOT_WHITESPACE])
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 40)))


def unk_strip_words(sp_model):
    """Vocabulary pieces '▁w' with w itself not a piece, sampled evenly over the id range (deterministic)."""
    words = []
    for i in range(sp_model.get_piece_size()):
        p = sp_model.id_to_piece(i)
        if p.startswith("▁") and len(p) > 1 and sp_model.piece_to_id(p[1:]) == sp_model.unk_id():
            words.append(p[1:])
    return words[:: max(1, len(words) // 40)][:40]


def encode_cases(tok):
    rng = random.Random(SEED)
    cases = targeted_cases(unk_strip_words(tok.sp_model))
    cases += conversation_cases(rng)
    cases += answer_cases(rng, 400)
    cases += [("random_mix", random_mixture(rng)) for _ in range(1900)]
    cases += [("random_chars", random_chars(rng)) for _ in range(500)]
    return dedup(cases)


def encode_record(tok, tag, text):
    ids = tok(text).input_ids
    tokens = tok.tokenize(text)
    assert ids == [tok.bos_token_id] + tok.convert_tokens_to_ids(tokens), text
    assert ids == tok.encode(text), text
    pieces = tok.convert_ids_to_tokens(ids)
    rec = {"tag": tag, "text": text, "ids": ids, "pieces": pieces}
    if tokens != pieces[1:]:
        rec["tokens"] = tokens
    return rec


def byte_ids(s):
    return [b + 3 for b in s.encode("utf-8")]  # <0x00> is id 3


def decode_cases(tok, encoded):
    rng = random.Random(SEED + 1)
    vocab = len(tok)
    sp_id = tok.convert_tokens_to_ids
    c = [("empty", [])]
    # Generated outputs: encoded answers, as generate() returns them (prefix BOS sometimes, EOS at the end).
    answers = [r for r in encoded if r["tag"].startswith("answer") or r["tag"] in ("known", "unk_strip")]
    answers += [r for r in encoded if r["tag"] in ("added", "special")][::3]
    for r in answers:
        c.append(("output", r["ids"][1:] + [2]))
        if rng.random() < 0.2:
            c.append(("output_bos", r["ids"] + [2]))
    # Every id-level special placement: BOS/EOS/UNK (skipped when skip_special_tokens) around words/added tokens.
    hello, world = sp_id("▁Hello"), sp_id("▁world")
    for pre in ([], [1], [0], [2], [1, 1]):
        for mid in ([hello, world], [hello, 0, world], [hello, 2, world], [hello, 1, world], [hello, 32003, 32004],
                    [32003, 32004, hello], [32003, 0, 32004], [32003, 2, 32004], [0, 0], [2], [1], [0]):
            for post in ([], [2], [0]):
                c.append(("special", pre + mid + post))
    # Leading-space handling: first piece with one / two "▁", bare "▁", no "▁", "<0x20>", after BOS / added tokens.
    starts = [[29871], [259], [29871, hello], [259, hello], [hello], [sp_id("Hello")], [sp_id("ER")], [3 + 0x20],
              [3 + 0x20, hello], [29871, 29871], [29871, 3 + 0x0A], [3 + 0x0A, hello], [sp_id("▁" * 4)],
              [sp_id("▁" * 16)]]
    for s in starts:
        for pre in ([], [1], [32003], [32002], [1, 32003]):
            c.append(("lead_space", pre + s + [world]))
    # Byte fallback: valid UTF-8, invalid fragments, mixed with "▁" and text pieces, at start and mid-sequence.
    valid = ["😀", "👍🏽", "🇺🇸", "中", "𓀀", "\U0010fffd", "é", "\x00", "\x7f", "\t", "\n", "\x80", "€", "𝔘"]
    for s in valid:
        b = byte_ids(s)
        c += [("bytes_valid", b), ("bytes_valid", [29871] + b), ("bytes_valid", [hello] + b + [world]),
              ("bytes_valid", [32003] + b + [32004]), ("bytes_valid", [hello, 29871] + b)]
    invalid = [[0xE4, 0xB8], [0xF0, 0x9F, 0x98], [0xB8], [0x80, 0x80], [0xFF], [0xFE, 0xFF], [0xC0, 0xAF],
               [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3], [0xE4, 0x41],
               [0xF0, 0x9F, 0x98, 0x80, 0x80], [0xC3, 0xA9, 0xA9], [0x41, 0x80, 0x42]]
    for bs in invalid:
        b = [x + 3 for x in bs]
        c += [("bytes_invalid", b), ("bytes_invalid", [29871] + b), ("bytes_invalid", [hello] + b + [world]),
              ("bytes_invalid", b + [32003, 32004]), ("bytes_invalid", [hello] + b + [2] + b)]
    # Encoded texts with byte-fallback pieces (ids straight from encoding), cut at random points.
    with_bytes = [r["ids"] for r in encoded if any(3 <= i < 259 for i in r["ids"])]
    for ids in with_bytes[:: max(1, len(with_bytes) // 80)][:80]:
        cut = rng.randint(1, len(ids))
        c.append(("bytes_cut", ids[1:cut] + [2]))
    # Random id sequences: uniform over the whole vocabulary, and biased to specials, bytes, spaces, added tokens.
    for _ in range(160):
        c.append(("random_uniform", [rng.randrange(vocab) for _ in range(rng.randint(1, 40))]))
    hot = [0, 1, 2, 29871, 259, 13, 12, 32000, 32001, 32002, 32003, 32004, 29889, 673, 29901, hello, world]
    for _ in range(160):
        ids = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.35:
                ids.append(rng.choice(hot))
            elif r < 0.6:
                ids.append(rng.randrange(3, 259))
            else:
                ids.append(rng.randrange(259, 32000))
        c.append(("random_biased", ids))
    return dedup_ids(c)


def dedup_ids(cases):
    seen = {}
    for tag, ids in cases:
        seen.setdefault(tuple(ids), tag)
    return [(tag, list(ids)) for ids, tag in seen.items()]


def decode_record(tok, tag, ids):
    return {"tag": tag, "ids": ids, "text": tok.decode(ids, skip_special_tokens=True),
            "text_keep_special": tok.decode(ids, skip_special_tokens=False)}


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="path of LLaMA's sentencepiece tokenizer.model")
    ap.add_argument("--out", required=True, help="output folder, e.g. testdata/golden/tokenizer")
    args = ap.parse_args()

    import sentencepiece
    import tokenizers
    import transformers

    if transformers.__version__ != "4.31.0":
        sys.exit(f"transformers {transformers.__version__}: the reference is 4.31.0 (tools/reference/requirements.txt)")
    tok = build_tokenizer(args.tokenizer)
    check_reference(tok)

    encoded = [encode_record(tok, tag, text) for tag, text in encode_cases(tok)]
    decoded = [decode_record(tok, tag, ids) for tag, ids in decode_cases(tok, encoded)]

    os.makedirs(args.out, exist_ok=True)
    enc_path = os.path.join(args.out, "encode.jsonl")
    dec_path = os.path.join(args.out, "decode.jsonl")
    write_jsonl(enc_path, encoded)
    write_jsonl(dec_path, decoded)

    def tag_counts(records):
        counts = {}
        for r in records:
            counts[r["tag"]] = counts.get(r["tag"], 0) + 1
        return dict(sorted(counts.items()))

    manifest = {
        "generator": "tools/reference/tokenizer_goldens.py",
        "command": "python tools/reference/tokenizer_goldens.py --tokenizer ../shared/testdata/tokenizer/llama.model "
                   "--out testdata/golden/tokenizer",
        "seed": SEED,
        "versions": {"python": platform.python_version(), "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "sentencepiece": sentencepiece.__version__},
        "tokenizer_model": {"file": os.path.basename(args.tokenizer), "bytes": os.path.getsize(args.tokenizer),
                            "sha256": sha256_file(args.tokenizer)},
        "construction": [
            "LlamaTokenizer(vocab_file=<tokenizer_model>, legacy=False)",
            "tokenizer.sanitize_special_tokens()",
            "tokenizer.pad_token = tokenizer.unk_token",
            "tokenizer.add_tokens(['<im_patch>'], special_tokens=True)",
            "tokenizer.add_tokens(['<im_start>', '<im_end>', '<at>', '<boxes>'], special_tokens=True)",
        ],
        "legacy": tok.legacy,
        "add_bos_token": tok.add_bos_token,
        "add_eos_token": tok.add_eos_token,
        "clean_up_tokenization_spaces": tok.clean_up_tokenization_spaces,
        "added_tokens": {t: tok.convert_tokens_to_ids(t) for t in ADDED_TOKENS},
        "special_tokens": {"bos": [tok.bos_token, tok.bos_token_id], "eos": [tok.eos_token, tok.eos_token_id],
                           "unk": [tok.unk_token, tok.unk_token_id], "pad": [tok.pad_token, tok.pad_token_id]},
        "no_split_tokens": list(tok.unique_no_split_tokens),
        "vocab_size": len(tok),
        "encode": {"file": "encode.jsonl", "cases": len(encoded), "sha256": sha256_file(enc_path),
                   "call": "tokenizer(text).input_ids; pieces = convert_ids_to_tokens(ids); "
                           "tokens = tokenize(text) only where it differs from pieces[1:]",
                   "tags": tag_counts(encoded)},
        "decode": {"file": "decode.jsonl", "cases": len(decoded), "sha256": sha256_file(dec_path),
                   "call": "text = decode(ids, skip_special_tokens=True); "
                           "text_keep_special = decode(ids, skip_special_tokens=False)",
                   "tags": tag_counts(decoded)},
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    print(f"{len(encoded)} encode cases, {len(decoded)} decode cases -> {args.out}")


if __name__ == "__main__":
    main()
