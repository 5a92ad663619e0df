package engine

import (
	"hash/maphash"
	"unsafe"

	"github.com/nextchat/nextchat/bindings"
)

// rowKey identifies what one cached position holds: its token, and a hash of what replaced the token's embedding —
// the box of a <boxes> row, the embedding itself for other rows (image features) — or 0 where nothing did.
//
// A <boxes> row is keyed by its box, not its embedding, so that an answer's generated <boxes> rows — fed
// loc_encoder of the box the core decoded at the <at> before them (MODEL_SPEC §2.3), inside the step — match the
// same answer sent back in the next turn's prompt, whose <boxes> rows take loc_encoder of the same boxes in Prepare:
// the same function of the same box, equal up to the rounding of another batch shape.
type rowKey struct {
	token  int32
	embeds uint64
}

// unmatchable marks a position no prompt row can equal: a generated <boxes> row whose box is unknown.
var unmatchable = rowKey{token: -1}

// prefixEntry is a finished request's sequence, kept with the rows its cached positions hold.
type prefixEntry struct {
	seq  *bindings.Seq
	rows []rowKey
}

// prefixCache keeps finished requests' sequences so that a request starting with the same rows — the next turn of
// a conversation, another question about the same image — continues one of them and prefills only the rest
// (docs/ARCHITECTURE.md "Prefix cache"). The entries live in the plan's KV cache, mostly in blocks the requests
// continuing them share; when a step finds the cache full, entries are closed until it fits (Engine.step), so the
// plan's blocks always cover the running requests. Used under Engine.mu.
type prefixCache struct {
	capacity int
	seed     maphash.Seed
	entries  []*prefixEntry // least recently used first
}

func newPrefixCache(capacity int) prefixCache {
	return prefixCache{capacity: capacity, seed: maphash.MakeSeed()}
}

// keys are the rows of a step input as cached positions; boxes are the boxes of its <boxes> rows by row
// (Prepared.RowBoxes).
func (c *prefixCache) keys(in bindings.StepInput, hidden int, boxes map[int][4]float32) []rowKey {
	rows := make([]rowKey, len(in.Tokens))
	for r, tok := range in.Tokens {
		rows[r].token = tok
		if box, ok := boxes[r]; ok {
			rows[r].embeds = c.boxHash(box)
		} else if embedsRow(in, r) {
			rows[r].embeds = c.hash(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(in.Embeds[r*hidden:]))), hidden*4))
		}
	}
	return rows
}

// boxHash keys a <boxes> row by its box (normalized xyxy, as decoded or as sent back).
func (c *prefixCache) boxHash(box [4]float32) uint64 {
	return c.hash(unsafe.Slice((*byte)(unsafe.Pointer(&box[0])), 16))
}

// hash is the seeded hash of a row's replacing input (never 0, which means "nothing replaced the token's").
func (c *prefixCache) hash(b []byte) uint64 {
	return max(maphash.Bytes(c.seed, b), 1)
}

// generatedKeys are the positions decoding fed after the prompt: the first fed tokens of generated, each <boxes>
// after a located <at> keyed by the location's box (unmatchable should there be none).
func (c *prefixCache) generatedKeys(generated []int32, fed int, atID int32, locs []Location) []rowKey {
	rows := make([]rowKey, fed)
	for i := range rows {
		rows[i].token = generated[i]
		if i == 0 || generated[i-1] != atID {
			continue
		}
		rows[i] = unmatchable
		for _, l := range locs {
			if l.TokenIndex == i-1 {
				rows[i] = rowKey{token: generated[i], embeds: c.boxHash(l.Box)}
			}
		}
	}
	return rows
}

// match returns the entry sharing the longest prefix with rows, at most limit rows of it, and the number shared;
// nil when none shares a row. The entry becomes the most recently used: it stays (a request forks it) until trim.
func (c *prefixCache) match(rows []rowKey, limit int) (*prefixEntry, int) {
	best, shared := -1, 0
	for i, e := range c.entries {
		if n := commonPrefix(e.rows, rows, limit); n > shared {
			best, shared = i, n
		}
	}
	if best < 0 {
		return nil, 0
	}
	e := c.entries[best]
	c.entries = append(append(c.entries[:best], c.entries[best+1:]...), e)
	return e, shared
}

// put keeps a finished sequence holding rows (most recently used); over capacity, the least recently used goes.
// What is kept is a fork of all its positions with a sampler that never sampled: an entry holds its blocks, its
// tokens and its block table, not the per-vocabulary buffers of the sampler (~12 bytes per id).
func (c *prefixCache) put(seq *bindings.Seq, rows []rowKey) {
	defer seq.Close()
	if c.capacity <= 0 || len(rows) == 0 || seq.Len() != len(rows) {
		return
	}
	kept, err := seq.ForkPrefix(len(rows), bindings.Greedy)
	if err != nil {
		return
	}
	c.entries = append(c.entries, &prefixEntry{seq: kept, rows: rows})
	c.trim(c.capacity)
}

// trim closes least recently used entries until at most n remain.
func (c *prefixCache) trim(n int) {
	for len(c.entries) > max(n, 0) {
		c.entries[0].seq.Close()
		c.entries = c.entries[1:]
	}
}

func commonPrefix(a, b []rowKey, limit int) int {
	n := min(len(a), len(b), limit)
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
