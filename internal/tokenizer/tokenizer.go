// Package tokenizer is NExT-Chat's tokenizer: LLaMA's SentencePiece BPE model (read from tokenizer.model)
// with the behaviour of transformers 4.31's slow LlamaTokenizer in legacy=False mode plus NExT-Chat's five
// added tokens (MODEL_SPEC §2.1, §6.3). tools/reference/TOKENIZER_NOTES.md describes the algorithm this
// package reproduces; the goldens in testdata/golden/tokenizer hold it to the reference exactly.
package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The ids of LLaMA's special pieces and NExT-Chat's added tokens (MODEL_SPEC §2.1).
const (
	UnkID     int32 = 0
	BOSID     int32 = 1
	EOSID     int32 = 2
	ImPatchID int32 = 32000
	ImStartID int32 = 32001
	ImEndID   int32 = 32002
	AtID      int32 = 32003
	BoxesID   int32 = 32004
)

// addedTokens are NExT-Chat's tokens, appended after the SentencePiece vocabulary in this order. Whitespace
// next to them is stripped when encoding (4.31: plain-str no-split tokens).
var addedTokens = []string{"<im_patch>", "<im_start>", "<im_end>", "<at>", "<boxes>"}

// specialPieces are split out of text too, but nothing around them is stripped (4.31: AddedToken with
// lstrip = rstrip = False).
var specialPieces = map[string]int32{"<unk>": UnkID, "<s>": BOSID, "</s>": EOSID}

// Tokenizer encodes and decodes. Safe for concurrent use.
type Tokenizer struct {
	sp    *sentencePiece
	added map[string]int32
	names []string // names of the added tokens, by id - first added id
}

// Load reads a LLaMA tokenizer.model and adds NExT-Chat's tokens after its vocabulary.
func Load(path string) (*Tokenizer, error) {
	m, err := loadSPModel(path)
	if err != nil {
		return nil, err
	}
	sp, err := newSentencePiece(m)
	if err != nil {
		return nil, err
	}
	if int32(len(m.pieces)) != ImPatchID {
		return nil, fmt.Errorf("%w: %d pieces, NExT-Chat's added tokens need LLaMA's 32000", ErrBadModel, len(m.pieces))
	}
	for text, id := range specialPieces {
		if p, ok := sp.piece(id); !ok || p.Text != text {
			return nil, fmt.Errorf("%w: id %d is not %s", ErrBadModel, id, text)
		}
	}
	t := &Tokenizer{sp: sp, added: map[string]int32{}, names: addedTokens}
	for i, name := range addedTokens {
		t.added[name] = ImPatchID + int32(i)
	}
	return t, nil
}

// VocabSize is the number of ids: the SentencePiece pieces plus the added tokens (32005).
func (t *Tokenizer) VocabSize() int { return len(t.sp.model.pieces) + len(t.names) }

// Piece is an id's text: a SentencePiece piece ("▁the", "<0x0A>") or an added token's name.
func (t *Tokenizer) Piece(id int32) (string, error) {
	if id >= ImPatchID && int(id-ImPatchID) < len(t.names) {
		return t.names[id-ImPatchID], nil
	}
	p, ok := t.sp.piece(id)
	if !ok {
		return "", fmt.Errorf("token id %d outside the vocabulary [0, %d)", id, t.VocabSize())
	}
	return p.Text, nil
}

// Encode tokenizes text as tokenizer(text).input_ids does, with BOS first when addBOS.
func (t *Tokenizer) Encode(text string, addBOS bool) []int32 {
	var ids []int32
	if addBOS {
		ids = append(ids, BOSID)
	}
	// legacy=False: the text gets a leading ▁, and any ▁ already in it becomes a space (TOKENIZER_NOTES §3.4).
	chunks := t.split(spaceMark + strings.ReplaceAll(text, spaceMark, " "))
	for i, c := range chunks {
		if _, ok := t.added[c.text]; ok && c.token {
			if i+1 < len(chunks) && !chunks[i+1].token {
				chunks[i+1].text = strings.TrimLeftFunc(chunks[i+1].text, isPySpace)
			}
			if i > 0 && !chunks[i-1].token {
				chunks[i-1].text = strings.TrimRightFunc(chunks[i-1].text, isPySpace)
			}
		}
	}
	for i, c := range chunks {
		switch {
		case c.token:
			ids = append(ids, t.tokenID(c.text))
		case i == 0:
			// The first chunk starts with the ▁ added above; SentencePiece adds its own dummy prefix.
			ids = t.sp.encode(strings.TrimPrefix(c.text, spaceMark), ids)
		case c.text != "":
			ids = t.encodeAfterToken(c.text, ids)
		}
	}
	return ids
}

// encodeAfterToken encodes a chunk that follows a token: SentencePiece's leading ▁ is cut off the first piece
// as a string, unless the chunk starts with an ASCII space; a cut string that is no piece becomes <unk>
// (transformers 4.31's behaviour, kept on purpose: the model was trained on these ids; NOTES §3.5).
func (t *Tokenizer) encodeAfterToken(chunk string, ids []int32) []int32 {
	start := len(ids)
	ids = t.sp.encode(chunk, ids)
	if strings.HasPrefix(chunk, " ") || len(ids) == start {
		return ids
	}
	first, _ := t.sp.piece(ids[start])
	if !strings.HasPrefix(first.Text, spaceMark) {
		return ids
	}
	cut := strings.TrimPrefix(first.Text, spaceMark)
	if cut == "" {
		return append(ids[:start], ids[start+1:]...)
	}
	id, ok := t.sp.bpe.vocab[cut]
	if !ok {
		id = UnkID
	}
	ids[start] = id
	return ids
}

func (t *Tokenizer) tokenID(name string) int32 {
	if id, ok := t.added[name]; ok {
		return id
	}
	return specialPieces[name]
}

// chunk is a piece of the text between tokens, or a token.
type chunk struct {
	text  string
	token bool
}

// split cuts text at every occurrence of the added tokens and <s>, </s>, <unk>: leftmost matches, no word
// boundaries (none of the eight is a substring of another, so leftmost-first equals 4.31's trie).
func (t *Tokenizer) split(text string) []chunk {
	var out []chunk
	start := 0
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], '<')
		if j < 0 {
			break
		}
		i += j
		if name := t.tokenAt(text[i:]); name != "" {
			if i > start {
				out = append(out, chunk{text: text[start:i]})
			}
			out = append(out, chunk{text: name, token: true})
			i += len(name)
			start = i
			continue
		}
		i++
	}
	if start < len(text) {
		out = append(out, chunk{text: text[start:]})
	}
	return out
}

func (t *Tokenizer) tokenAt(s string) string {
	for name := range t.added {
		if strings.HasPrefix(s, name) {
			return name
		}
	}
	for name := range specialPieces {
		if strings.HasPrefix(s, name) {
			return name
		}
	}
	return ""
}

// isPySpace is Python's str.isspace: Go's unicode.IsSpace plus the separators U+001C–U+001F.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// Decode turns ids into text as tokenizer.decode(ids, skip_special_tokens=skipSpecial) does: each added
// token is its own word, words joined by single spaces (NOTES §4).
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) (string, error) {
	var segments []string
	var run []int32
	flush := func() {
		if len(run) > 0 {
			segments = append(segments, t.runToString(run))
			run = run[:0]
		}
	}
	for _, id := range ids {
		if id < 0 || int(id) >= t.VocabSize() {
			return "", fmt.Errorf("token id %d outside the vocabulary [0, %d)", id, t.VocabSize())
		}
		if skipSpecial && (id == UnkID || id == BOSID || id == EOSID) {
			continue
		}
		if id >= ImPatchID {
			flush()
			segments = append(segments, t.names[id-ImPatchID])
			continue
		}
		run = append(run, id)
	}
	flush()
	return strings.Join(segments, " "), nil
}

// runToString is LlamaTokenizer.convert_tokens_to_string: <s>, </s> and <unk> (present when not skipped) are
// spliced in literally, with a space before them unless the previous token was one of them or they come first.
func (t *Tokenizer) runToString(ids []int32) string {
	var b strings.Builder
	var cur []int32
	prevSpecial := false
	for i, id := range ids {
		p, _ := t.sp.piece(id)
		if p.Type == PieceControl || p.Type == PieceUnknown {
			if !prevSpecial && i != 0 {
				b.WriteByte(' ')
			}
			t.piecesToString(&b, cur)
			b.WriteString(p.Text)
			cur = cur[:0]
			prevSpecial = true
			continue
		}
		cur = append(cur, id)
		prevSpecial = false
	}
	t.piecesToString(&b, cur)
	return b.String()
}

// piecesToString is SentencePiece's DecodePieces: byte pieces become UTF-8 (each invalid byte one U+FFFD),
// the first piece loses its leading ▁, every other ▁ is a space.
func (t *Tokenizer) piecesToString(b *strings.Builder, ids []int32) {
	var bytes []byte
	flushBytes := func() {
		for len(bytes) > 0 {
			r, size := utf8.DecodeRune(bytes)
			if r == utf8.RuneError && size <= 1 {
				b.WriteRune(utf8.RuneError)
				size = 1
			} else {
				b.Write(bytes[:size])
			}
			bytes = bytes[size:]
		}
	}
	for i, id := range ids {
		p, _ := t.sp.piece(id)
		if p.Type == PieceByte {
			bytes = append(bytes, t.sp.bpe.byteOf[id])
			continue
		}
		flushBytes()
		text := p.Text
		if i == 0 {
			text = strings.TrimPrefix(text, spaceMark)
		}
		b.WriteString(strings.ReplaceAll(text, spaceMark, " "))
	}
	flushBytes()
}
