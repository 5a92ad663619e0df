package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/golden"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/prompt"
)

func noPrefixCache(o *Options) { o.PrefixCache = -1 }

// A request starting with rows an earlier one held continues its sequence — another question about the same image,
// the next turn of the conversation, a sampled request, a beam search, grounding — and gives what an engine without
// the cache gives, reporting the prompt rows it did not compute.
func TestPrefixCacheContinuesEarlierRequests(t *testing.T) {
	c, g := goldenCase(t, "plain_greedy")
	cached := openCase(t, c, bindings.F32)
	fresh := openCase(t, c, bindings.F32, noPrefixCache)
	features := g["proj.out"].F32
	imageRows := cached.Config().ImageTokens()
	user := func(text string) prompt.Turn { return prompt.Turn{Role: prompt.User, Text: text} }
	greedy := GenParams{MaxNewTokens: 12, Sampling: bindings.Greedy}
	sampled := GenParams{MaxNewTokens: 12, Sampling: bindings.Sampling{Temperature: 0.9, TopK: 8, TopP: 0.9,
		RepetitionPenalty: 1.2, Seed: 77}}

	first, err := cached.Prepare(Request{Turns: []prompt.Turn{user("What is in the image?")}, ImageFeatures: features})
	require.NoError(t, err)
	a1, err := cached.Run(context.Background(), first, greedy, nil)
	require.NoError(t, err)
	assert.Zero(t, a1.CachedRows, "nothing cached yet")
	conversation, err := cached.Prepare(Request{Turns: []prompt.Turn{user("What is in the image?"),
		{Role: prompt.Assistant, Text: a1.Text}, user("And what colour is it?")}, ImageFeatures: features})
	require.NoError(t, err)
	other, err := cached.Prepare(Request{Turns: []prompt.Turn{user("Is there a dog?")}, ImageFeatures: features})
	require.NoError(t, err)

	tests := []struct {
		name      string
		p         Prepared
		g         GenParams
		beams     int
		minCached int
	}{
		{"another question about the image", other, greedy, 0, imageRows},
		{"the next turn", conversation, greedy, 0, len(first.IDs)},
		{"sampled", other, sampled, 0, len(other.IDs) - 1},
		{"beam search", first, greedy, 3, len(first.IDs) - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := func(e *Engine) Result {
				var res Result
				var err error
				if tc.beams > 0 {
					res, err = e.RunBeams(context.Background(), tc.p, tc.g, BeamParams{Beams: tc.beams, LengthPenalty: 1})
				} else {
					res, err = e.Run(context.Background(), tc.p, tc.g, nil)
				}
				require.NoError(t, err)
				return res
			}
			want, got := run(fresh), run(cached)
			assert.Zero(t, want.CachedRows)
			assert.GreaterOrEqual(t, got.CachedRows, tc.minCached)
			assert.Less(t, got.CachedRows, len(tc.p.IDs), "at least the last prompt row is computed")
			assert.Equal(t, want.Tokens, got.Tokens)
			assert.Equal(t, want.Text, got.Text)
			require.Len(t, got.Locations, len(want.Locations))
			for i := range got.Locations {
				for j := range got.Locations[i].Box {
					assert.InDelta(t, want.Locations[i].Box[j], got.Locations[i].Box[j], 1e-5)
				}
			}
		})
	}

	exprs := []string{"the red circle", "the blue square"}
	want, err := fresh.Ground(context.Background(), nil, features, exprs)
	require.NoError(t, err)
	got, err := cached.Ground(context.Background(), nil, features, exprs)
	require.NoError(t, err)
	for i := range got {
		for j := range got[i].Box {
			assert.InDelta(t, want[i].Box[j], got[i].Box[j], 1e-5, exprs[i])
		}
		assert.Less(t, golden.NMSE(got[i].Hidden, want[i].Hidden), 1e-9, exprs[i])
	}

	cached.ClearPrefixCache()
	free, total, err := cached.cache.Blocks()
	require.NoError(t, err)
	assert.Equal(t, total, free, "clearing the cache returns every block")
}

// Cached sequences use the plan's KV blocks between requests and give them back as requests need them: with room
// for two sequences of a short context, requests filling their context — one, two beams, two expressions — in turn
// never find the KV cache full.
func TestPrefixCacheStaysWithinThePlan(t *testing.T) {
	c, g := goldenCase(t, "plain_greedy")
	const ctxTokens = 96
	e := openCase(t, c, bindings.F32, func(o *Options) { o.ContextTokens, o.MaxSequences = ctxTokens, 2 })
	assert.Equal(t, 2, e.prefixes.capacity)
	features := g["proj.out"].F32
	questions := []string{"What is in the image?", "Describe it.", "Is there a dog in the picture?", "Why?"}
	for round := 0; round < 2; round++ {
		for i, q := range questions {
			p, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: q}}, ImageFeatures: features})
			require.NoError(t, err)
			gp := GenParams{MaxNewTokens: ctxTokens - len(p.IDs), Sampling: bindings.Sampling{Temperature: 1, TopP: 1,
				RepetitionPenalty: 1, Seed: uint64(i)}}
			if i%2 == 0 {
				_, err = e.Run(context.Background(), p, gp, nil)
			} else {
				_, err = e.RunBeams(context.Background(), p, GenParams{MaxNewTokens: gp.MaxNewTokens,
					Sampling: bindings.Greedy}, BeamParams{Beams: 2, LengthPenalty: 1})
			}
			require.NoError(t, err, "round %d, %q", round, q)
			assert.LessOrEqual(t, len(e.prefixes.entries), 2)
		}
		_, err := e.Ground(context.Background(), nil, features, []string{"a cat", "the sky"})
		require.NoError(t, err)
	}
}

func TestPrefixCacheMatch(t *testing.T) {
	k := func(tokens ...int32) []rowKey {
		rows := make([]rowKey, len(tokens))
		for i, tok := range tokens {
			rows[i].token = tok
		}
		return rows
	}
	tests := []struct {
		name       string
		cached     [][]rowKey
		rows       []rowKey
		limit      int
		wantEntry  int // index into cached; -1: none
		wantShared int
	}{
		{"longest prefix wins", [][]rowKey{k(1, 2, 9), k(1, 2, 3, 4), k(1, 5)}, k(1, 2, 3, 7), 3, 1, 3},
		{"limit caps it", [][]rowKey{k(1, 2, 3, 4)}, k(1, 2, 3, 4), 3, 0, 3},
		{"nothing shared", [][]rowKey{k(5, 6)}, k(1, 2), 1, -1, 0},
		{"embedding differs", [][]rowKey{{{token: 1}, {token: 7, embeds: 3}}}, []rowKey{{token: 1}, {token: 7, embeds: 4}, {token: 2}}, 2, 0, 1},
		{"a generated <boxes> never matches", [][]rowKey{{{token: 1}, unmatchable}}, []rowKey{{token: 1}, {token: 51}, {token: 3}}, 2, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := prefixCache{capacity: len(tc.cached)}
			entries := make([]*prefixEntry, len(tc.cached))
			for i, rows := range tc.cached {
				entries[i] = &prefixEntry{rows: rows}
				c.entries = append(c.entries, entries[i])
			}
			got, shared := c.match(tc.rows, tc.limit)
			assert.Equal(t, tc.wantShared, shared)
			assert.Len(t, c.entries, len(tc.cached), "matching keeps every entry")
			if tc.wantEntry < 0 {
				assert.Nil(t, got)
				assert.Equal(t, entries, c.entries, "order unchanged")
				return
			}
			assert.Same(t, entries[tc.wantEntry], got)
			assert.Same(t, got, c.entries[len(c.entries)-1], "the match becomes the most recently used")
		})
	}
}

// A generated <boxes> row is keyed by the box decoded at its <at>, as the same box sent back in a prompt is; without
// a location it matches nothing.
func TestGeneratedKeys(t *testing.T) {
	const at, boxes = 50, 51
	c := newPrefixCache(1)
	box := [4]float32{0.1, 0.2, 0.3, 0.4}
	got := c.generatedKeys([]int32{7, at, boxes, 9, at, boxes, 2}, 6, at, []Location{{TokenIndex: 1, Box: box}})
	want := rowKey{token: boxes, embeds: c.boxHash(box)}
	assert.Equal(t, []rowKey{{token: 7}, {token: at}, want, {token: 9}, {token: at}, unmatchable}, got)
	in := bindings.StepInput{Tokens: []int32{3, boxes}, Embeds: make([]float32, 2*4), EmbedRows: []bool{false, true}}
	assert.Equal(t, []rowKey{{token: 3}, want}, c.keys(in, 4, map[int][4]float32{1: box}),
		"a prompt's <boxes> row of the same box")
	assert.NotEqual(t, want, c.keys(in, 4, map[int][4]float32{1: {0.1, 0.2, 0.3, 0.5}})[1])
}

// The next turn after an answer with locations: the earlier answer goes back with its boxes (prompt.Turn.Boxes),
// its <boxes> rows take loc_encoder of them as they did when generated, and the cache continues the conversation
// through them (keyed by their boxes), giving the tokens of an engine without the cache.
func TestNextTurnAfterLocations(t *testing.T) {
	c, g := goldenCase(t, "grounded_caption_two_at")
	cached := openCase(t, c, bindings.F32)
	fresh := openCase(t, c, bindings.F32, noPrefixCache)
	first, err := cached.Prepare(request(t, c, g))
	require.NoError(t, err)
	answer, err := cached.Run(context.Background(), first, params(c), nil)
	require.NoError(t, err)
	require.Len(t, answer.Locations, 2)
	require.Equal(t, 2, strings.Count(answer.Text, prompt.Location), answer.Text)
	boxes := make([][4]float32, len(answer.Locations))
	for i, l := range answer.Locations {
		boxes[i] = l.Box
	}
	next := request(t, c, g)
	next.Turns = append(next.Turns, prompt.Turn{Role: prompt.Assistant, Text: answer.Text, Boxes: boxes},
		prompt.Turn{Role: prompt.User, Text: "And what is next to the second one?"})
	p, err := cached.Prepare(next)
	require.NoError(t, err)
	embeds, err := cached.Model.EncodeBoxes(boxes)
	require.NoError(t, err)
	H, slot := cached.Model.Hidden(), 0
	for r, id := range p.IDs {
		if id == int32(cached.Config().BoxesTokenID) {
			require.True(t, p.EmbedRows[r])
			assert.Equal(t, embeds[slot*H:(slot+1)*H], p.Embeds[r*H:(r+1)*H], "<boxes> row %d takes box %d", r, slot)
			slot++
		}
	}
	assert.Equal(t, 2, slot)

	want, err := fresh.Run(context.Background(), p, params(c), nil)
	require.NoError(t, err)
	got, err := cached.Run(context.Background(), p, params(c), nil)
	require.NoError(t, err)
	assert.Equal(t, want.Tokens, got.Tokens)
	// The first request's positions: its prompt and the answer tokens fed back (all but the last, sampled after the
	// final step). The next turn continues them as far as its tokens agree — past the generated <boxes> rows, whose
	// boxes it sends back — up to the re-tokenized answer's first difference, if any.
	held := append(slices.Clone(first.IDs), answer.Tokens[:len(answer.Tokens)-1]...)
	agree := 0
	for agree < min(len(held), len(p.IDs)-1) && held[agree] == p.IDs[agree] {
		agree++
	}
	firstBoxes := len(first.IDs) + slices.Index(answer.Tokens, int32(cached.Config().BoxesTokenID))
	require.Greater(t, agree, firstBoxes, "the case's answer re-tokenizes the same past its first <boxes>")
	assert.Equal(t, agree, got.CachedRows, "continued through the answer's generated <boxes> rows")

	for _, tc := range []struct {
		name  string
		turns []prompt.Turn
		want  string
	}{
		{"fewer boxes than locations", []prompt.Turn{{Role: prompt.User, Text: "q"},
			{Role: prompt.Assistant, Text: answer.Text, Boxes: boxes[:1]}, {Role: prompt.User, Text: "q2"}},
			"turn 1 has 2 location(s) but 1 box(es)"},
		{"boxes on a user turn", []prompt.Turn{{Role: prompt.User, Text: "q", Boxes: boxes}}, "region boxes, referred to as [i]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cached.Prepare(Request{Turns: tc.turns})
			require.ErrorIs(t, err, prompt.ErrBadPrompt)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// A conversation asks each question after the earlier turns, answers with their boxes included, and gives what the
// same conversation gives on an engine without the prefix cache while prefilling only each turn's new rows.
func TestConversationRemembersAnswersAndTheirBoxes(t *testing.T) {
	c, _ := goldenCase(t, "grounded_caption_two_at")
	f, err := os.Open(filepath.Join(golden.Root(), c.Image))
	require.NoError(t, err)
	img, _, err := imageproc.Decode(f, imageproc.Options{})
	f.Close()
	require.NoError(t, err)
	e := openCase(t, c, bindings.F32)
	cached := e.NewConversation(img, nil)
	fresh := openCase(t, c, bindings.F32, noPrefixCache).NewConversation(img, nil)
	questions := []string{c.Prompt, "What is next to the first one?", "And behind it?"}
	for i, q := range questions {
		want, err := fresh.Ask(context.Background(), q, params(c), nil)
		require.NoError(t, err)
		got, err := cached.Ask(context.Background(), q, params(c), nil)
		require.NoError(t, err)
		assert.Equal(t, want.Tokens, got.Tokens, "turn %d", i)
		if i > 0 {
			assert.Greater(t, got.CachedRows, e.Config().ImageTokens(), "turn %d continues the conversation", i)
		}
	}
	turns := cached.Turns()
	require.Len(t, turns, 2*len(questions))
	first := turns[1]
	assert.Equal(t, prompt.Assistant, first.Role)
	assert.Len(t, first.Boxes, strings.Count(first.Text, prompt.BoxesSlot))
	assert.NotEmpty(t, first.Boxes, "the golden case's answer has locations")
	cached.Reset()
	assert.Empty(t, cached.Turns())
}

// Go backends call one engine from many goroutines: requests of every kind at once (answers, beams, grounding, a
// conversation) each get what they get alone on an engine without the prefix cache, and the cache ends consistent.
func TestConcurrentRequestsShareOneEngine(t *testing.T) {
	c, g := goldenCase(t, "plain_greedy")
	shared := openCase(t, c, bindings.F32)
	alone := openCase(t, c, bindings.F32, noPrefixCache)
	features := g["proj.out"].F32
	ask := func(e *Engine, q string) (Result, error) {
		p, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: q}}, ImageFeatures: features})
		if err != nil {
			return Result{}, err
		}
		return e.Run(context.Background(), p, GenParams{MaxNewTokens: 10, Sampling: bindings.Sampling{Temperature: 0.9,
			TopP: 0.95, RepetitionPenalty: 1.1, Seed: uint64(len(q))}}, nil)
	}
	// Every request's outcome as numbers: token ids, or box coordinates.
	tokens := func(r Result, err error) ([]float64, error) {
		out := make([]float64, len(r.Tokens))
		for i, id := range r.Tokens {
			out[i] = float64(id)
		}
		return out, err
	}
	requests := []func(e *Engine) ([]float64, error){
		func(e *Engine) ([]float64, error) { return tokens(ask(e, "What is in the image?")) },
		func(e *Engine) ([]float64, error) { return tokens(ask(e, "Is there a dog?")) },
		func(e *Engine) ([]float64, error) {
			p, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: "Describe it."}}, ImageFeatures: features})
			if err != nil {
				return nil, err
			}
			return tokens(e.RunBeams(context.Background(), p, GenParams{MaxNewTokens: 6, Sampling: bindings.Greedy},
				BeamParams{Beams: 2, LengthPenalty: 1}))
		},
		func(e *Engine) ([]float64, error) {
			locs, err := e.Ground(context.Background(), nil, features, []string{"a cat", "the sky", "a red ball"})
			var coords []float64
			for _, l := range locs {
				for _, v := range l.Box {
					coords = append(coords, float64(v))
				}
			}
			return coords, err
		},
	}
	want := make([][]float64, len(requests))
	for i, r := range requests {
		var err error
		want[i], err = r(alone)
		require.NoError(t, err)
	}
	got := make([][][]float64, 3)
	errs := make([][]error, 3)
	var wg sync.WaitGroup
	for round := range got {
		got[round], errs[round] = make([][]float64, len(requests)), make([]error, len(requests))
		for i, r := range requests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[round][i], errs[round][i] = r(shared)
			}()
		}
	}
	wg.Wait()
	for round := range got {
		for i := range requests {
			require.NoError(t, errs[round][i], "round %d, request %d", round, i)
			assert.InDeltaSlice(t, want[i], got[round][i], 1e-5, "round %d, request %d", round, i)
		}
	}
	shared.ClearPrefixCache()
	free, total, err := shared.cache.Blocks()
	require.NoError(t, err)
	assert.Equal(t, total, free)
}
