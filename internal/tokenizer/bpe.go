package tokenizer

import (
	"fmt"
	"strings"
	"sync"
)

// spaceMark is SentencePiece's escaped space "▁" (U+2581).
const spaceMark = "\u2581"

// bpe is SentencePiece's BPE encoder (bpe_model.cc): start from characters, repeatedly merge the adjacent
// pair whose concatenation is the highest-scoring piece (ties: leftmost), then map what remains to ids,
// falling back to <0xNN> byte pieces for characters not in the vocabulary.
type bpe struct {
	vocab   map[string]int32 // pieces that can be produced by merging or matched as characters
	scores  []float32
	byteIDs [256]int32
	byteOf  map[int32]byte // the byte each <0xNN> piece stands for
	unkID   int32
	// splitBeforeSpace is true when no piece has a space mark after another character: merges then never
	// cross the start of a run of spaces, so words can be encoded (and cached) independently.
	splitBeforeSpace bool

	mu    sync.RWMutex
	cache map[string][]int32
}

// maxCacheEntries bounds the word cache; it is cleared when full (hot words come back at once).
const maxCacheEntries = 1 << 16

func newBPE(m *spModel) (*bpe, error) {
	b := &bpe{vocab: make(map[string]int32, len(m.pieces)), unkID: m.unkID, splitBeforeSpace: true,
		cache: map[string][]int32{}, byteOf: map[int32]byte{}}
	for i := range b.byteIDs {
		b.byteIDs[i] = -1
	}
	b.scores = make([]float32, len(m.pieces))
	for i, p := range m.pieces {
		id := int32(i)
		b.scores[i] = p.Score
		switch p.Type {
		case PieceNormal:
			b.vocab[p.Text] = id
			if strings.Contains(strings.TrimLeft(p.Text, spaceMark), spaceMark) {
				b.splitBeforeSpace = false
			}
		case PieceByte:
			var v byte
			if _, err := fmt.Sscanf(p.Text, "<0x%02X>", &v); err != nil {
				return nil, fmt.Errorf("%w: byte piece %q", ErrBadModel, p.Text)
			}
			b.byteIDs[v] = id
			b.byteOf[id] = v
		case PieceUserDefined:
			return nil, fmt.Errorf("%w: user-defined pieces are not supported (LLaMA has none)", ErrBadModel)
		}
	}
	if m.byteFallback {
		for v, id := range b.byteIDs {
			if id < 0 {
				return nil, fmt.Errorf("%w: byte fallback without piece <0x%02X>", ErrBadModel, v)
			}
		}
	} else {
		b.byteIDs = [256]int32{}
		for i := range b.byteIDs {
			b.byteIDs[i] = -1
		}
	}
	return b, nil
}

// encode appends the ids of normalized text (spaces already escaped to ▁).
func (b *bpe) encode(text string, out []int32) []int32 {
	if !b.splitBeforeSpace {
		return b.encodeWord(text, out)
	}
	start, prevSpace := 0, false
	for i, r := range text {
		space := r == '\u2581'
		if space && !prevSpace && i > start {
			out = b.encodeWord(text[start:i], out)
			start = i
		}
		prevSpace = space
	}
	return b.encodeWord(text[start:], out)
}

// encodeWord encodes one word through the cache.
func (b *bpe) encodeWord(word string, out []int32) []int32 {
	if word == "" {
		return out
	}
	b.mu.RLock()
	ids, ok := b.cache[word]
	b.mu.RUnlock()
	if ok {
		return append(out, ids...)
	}
	ids = b.merge(word, nil)
	b.mu.Lock()
	if len(b.cache) >= maxCacheEntries {
		clear(b.cache)
	}
	b.cache[word] = ids
	b.mu.Unlock()
	return append(out, ids...)
}

// symbol is a span of the word during merging, linked to its neighbours.
type symbol struct {
	start, end int
	prev, next int // -1 at the ends
}

// candidate is a mergeable adjacent pair: left symbol index, the span both cover, the merged piece's score.
type candidate struct {
	left, right int
	end         int // end of the right symbol when the candidate was made: detects stale entries
	score       float32
}

// merge runs BPE on one word.
func (b *bpe) merge(word string, out []int32) []int32 {
	syms := make([]symbol, 0, len(word))
	for i := range word {
		if len(syms) > 0 {
			syms[len(syms)-1].end = i
		}
		syms = append(syms, symbol{start: i, prev: len(syms) - 1, next: len(syms) + 1})
	}
	syms[len(syms)-1].end = len(word)
	syms[len(syms)-1].next = -1

	var heap candidateHeap
	tryPair := func(l int) {
		if l < 0 {
			return
		}
		r := syms[l].next
		if r < 0 {
			return
		}
		if id, ok := b.vocab[word[syms[l].start:syms[r].end]]; ok {
			heap.push(candidate{left: l, right: r, end: syms[r].end, score: b.scores[id]})
		}
	}
	for i := range syms {
		tryPair(i)
	}
	for heap.len() > 0 {
		c := heap.pop()
		l, r := &syms[c.left], &syms[c.right]
		// Stale: one side already merged away, or the pair no longer spans what it did.
		if l.start < 0 || r.start < 0 || l.next != c.right || r.end != c.end {
			continue
		}
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = c.left
		}
		r.start = -1
		tryPair(l.prev)
		tryPair(c.left)
	}
	for i := 0; i >= 0 && i < len(syms); i = syms[i].next {
		piece := word[syms[i].start:syms[i].end]
		if id, ok := b.vocab[piece]; ok {
			out = append(out, id)
			continue
		}
		out = b.fallback(piece, out)
	}
	return out
}

// fallback maps a piece that is not in the vocabulary to its UTF-8 bytes, or to <unk> without byte pieces.
func (b *bpe) fallback(piece string, out []int32) []int32 {
	if b.byteIDs[0] < 0 {
		return append(out, b.unkID)
	}
	for i := 0; i < len(piece); i++ {
		out = append(out, b.byteIDs[piece[i]])
	}
	return out
}

// candidateHeap is a max-heap by score, then by leftmost position (sentencepiece's SymbolPairComparator).
type candidateHeap struct{ items []candidate }

func (h *candidateHeap) len() int { return len(h.items) }

func (h *candidateHeap) before(i, j int) bool {
	a, b := h.items[i], h.items[j]
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

func (h *candidateHeap) push(c candidate) {
	h.items = append(h.items, c)
	for i := len(h.items) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.before(i, p) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *candidateHeap) pop() candidate {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.before(l, m) {
			m = l
		}
		if r < last && h.before(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}
