package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/golden"
	"github.com/nextchat/nextchat/internal/prompt"
)

// The engine reserves the plan its options make and sizes the KV cache and image caches from it.
func TestOpenReservesThePlan(t *testing.T) {
	cases, err := golden.Cases()
	require.NoError(t, err)
	e := openCase(t, cases[0], bindings.F32)
	r := e.Plan.Request
	assert.Equal(t, int64(512), r.MaxContext)
	assert.Equal(t, 4, r.MaxSequences)
	assert.Equal(t, 4*512, r.MaxStepRows)
	assert.Equal(t, 16, e.images.capacity)
	assert.Equal(t, 4, e.samImages.capacity)
	free, total, err := e.cache.Blocks()
	require.NoError(t, err)
	assert.Equal(t, e.Plan.KVBlocks, total)
	assert.Equal(t, total, free)
	held, err := e.Model.Workspace()
	require.NoError(t, err)
	assert.Equal(t, e.Plan.WorkspaceBytes, held)

	// Planned work grows no workspace.
	p, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: "Where is the dog?"}}})
	require.NoError(t, err)
	_, err = e.Run(context.Background(), p, GenParams{MaxNewTokens: 4, Sampling: bindings.Greedy}, nil)
	require.NoError(t, err)
	held, err = e.Model.Workspace()
	require.NoError(t, err)
	assert.Equal(t, e.Plan.WorkspaceBytes, held)
}

// A request the plan does not cover is rejected before any compute, with ErrOverPlan and what to change.
func TestAdmissionRejectsWorkBeyondThePlan(t *testing.T) {
	cases, err := golden.Cases()
	require.NoError(t, err)
	e := openCase(t, cases[0], bindings.F32)
	short, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: "Hi"}}})
	require.NoError(t, err)
	long, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: strings.Repeat("dog ", 600)}}})
	require.NoError(t, err)
	greedy := func(n int) GenParams { return GenParams{MaxNewTokens: n, Sampling: bindings.Greedy} }
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{"prompt longer than the context", func() error {
			_, err := e.Run(context.Background(), long, greedy(1), nil)
			return err
		}, "context too long"},
		{"answer past the context", func() error {
			_, err := e.Run(context.Background(), short, greedy(512), nil)
			return err
		}, "new tokens > 512 planned positions"},
		{"more beams than sequences", func() error {
			_, err := e.RunBeams(context.Background(), short, greedy(4), BeamParams{Beams: 5, LengthPenalty: 1})
			return err
		}, "5 sequences at once, the plan has 4"},
		{"more expressions than sequences", func() error {
			_, err := e.Ground(context.Background(), nil, make([]float32, e.Dir.Config.ImageTokens()*e.Dir.Config.HiddenSize),
				[]string{"a", "b", "c", "d", "e"})
			return err
		}, "5 sequences at once"},
		{"more boxes than locations", func() error {
			_, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: "[0]"}}, RegionBoxes: make([][4]float32, 9)})
			return err
		}, "9 region boxes, the plan has 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			require.ErrorIs(t, err, bindings.ErrOverPlan)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	free, total, err := e.cache.Blocks()
	require.NoError(t, err)
	assert.Equal(t, total, free, "nothing was left in the KV cache")
}

func TestFeatureCacheCapacity(t *testing.T) {
	keys := []imageKey{{1}, {2}, {3}}
	tests := []struct {
		name     string
		capacity int
		kept     []bool // after putting keys in order
	}{
		{"none", 0, []bool{false, false, false}},
		{"one", 1, []bool{false, false, true}},
		{"two, least recently used dropped", 2, []bool{false, true, true}},
		{"room for all", 16, []bool{true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := featureCache{capacity: tc.capacity}
			for i, k := range keys {
				f, err := c.get(k, func() ([]float32, error) { return []float32{float32(i)}, nil })
				require.NoError(t, err)
				assert.Equal(t, []float32{float32(i)}, f)
			}
			for i, k := range keys {
				f, ok := c.byKey[k]
				assert.Equal(t, tc.kept[i], ok, "key %d", i)
				if ok {
					assert.Equal(t, []float32{float32(i)}, f)
				}
			}
		})
	}
}

// Requests about one image at once run its encoder once and all get its result; a failure reaches them all and is
// not cached, so the next request tries again.
func TestFeatureCacheEncodesAnImageOnce(t *testing.T) {
	for _, fail := range []bool{false, true} {
		c := featureCache{capacity: 2}
		release := make(chan struct{})
		var calls atomic.Int32
		compute := func() ([]float32, error) {
			calls.Add(1)
			<-release
			if fail {
				return nil, errors.New("encoder failed")
			}
			return []float32{42}, nil
		}
		const callers = 8
		results := make(chan error, callers)
		for range callers {
			go func() {
				f, err := c.get(imageKey{7}, compute)
				if err == nil && (len(f) != 1 || f[0] != 42) {
					err = fmt.Errorf("got %v", f)
				}
				results <- err
			}()
		}
		require.Eventually(t, func() bool { return calls.Load() == 1 }, 10*time.Second, time.Millisecond)
		close(release)
		for range callers {
			if err := <-results; fail {
				assert.EqualError(t, err, "encoder failed")
			} else {
				assert.NoError(t, err)
			}
		}
		if !fail { // (a caller arriving after a failure tries again: only success is shared with latecomers)
			assert.Equal(t, int32(1), calls.Load(), "one encoder call for %d requests", callers)
		}
		_, cached := c.byKey[imageKey{7}]
		assert.Equal(t, !fail, cached)
		assert.Empty(t, c.computing)
	}
}
