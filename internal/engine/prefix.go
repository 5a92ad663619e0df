package engine

import (
	"hash/maphash"
	"unsafe"

	"github.com/nextchat/nextchat/bindings"
)

// rowKey identifies what one cached position holds: its token, and a hash of the embedding that replaced the token's
// (image features, a user box) or 0 where none did.
type rowKey struct {
	token  int32
	embeds uint64
}

// unmatchable marks a position no prompt row can equal: a generated <boxes> row, which took the box the core decoded
// at the <at> before it (MODEL_SPEC §2.3) — an embedding Go never sees.
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

// keys are the rows of a step input as cached positions.
func (c *prefixCache) keys(in bindings.StepInput, hidden int) []rowKey {
	rows := make([]rowKey, len(in.Tokens))
	for r, tok := range in.Tokens {
		rows[r].token = tok
		if embedsRow(in, r) {
			rows[r].embeds = c.embedsHash(in.Embeds[r*hidden : (r+1)*hidden])
		}
	}
	return rows
}

// embedsHash hashes an embedding's bits (never 0, which means "no embedding").
func (c *prefixCache) embedsHash(row []float32) uint64 {
	h := maphash.Bytes(c.seed, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(row))), len(row)*4))
	return max(h, 1)
}

// generatedKeys are the positions decoding fed after the prompt: the first fed tokens of generated, each <boxes>
// after a located <at> unmatchable.
func generatedKeys(generated []int32, fed int, atID int32) []rowKey {
	rows := make([]rowKey, fed)
	for i := range rows {
		rows[i].token = generated[i]
		if i > 0 && generated[i-1] == atID {
			rows[i] = unmatchable
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
