package bindings_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
)

func TestProbes(t *testing.T) {
	gflops, err := bindings.FMAPeak(1, 50*time.Millisecond)
	require.NoError(t, err)
	assert.Greater(t, gflops, 0.1)
	for _, tc := range []struct {
		threads int
		d       time.Duration
	}{{-1, time.Second}, {1025, time.Second}, {1 << 40, time.Second}, {1, 0}, {1, -time.Second}, {1, time.Hour}} {
		_, err := bindings.FMAPeak(tc.threads, tc.d)
		assert.ErrorIs(t, err, bindings.ErrInvalidArgument, "threads %d, %v", tc.threads, tc.d)
		_, err = bindings.ReadBandwidth(tc.threads, tc.d)
		assert.ErrorIs(t, err, bindings.ErrInvalidArgument, "threads %d, %v", tc.threads, tc.d)
		_, err = bindings.AMXPeak(tc.threads, tc.d)
		assert.ErrorIs(t, err, bindings.ErrInvalidArgument, "threads %d, %v", tc.threads, tc.d)
	}
	// The tile unit, where the kernels use it, outruns the vector units; elsewhere the probe says 0.
	amx, err := bindings.AMXPeak(1, 50*time.Millisecond)
	require.NoError(t, err)
	if amx > 0 {
		assert.Greater(t, amx, gflops)
	} else {
		assert.Zero(t, amx)
	}
	if testing.Short() {
		t.Skip("the bandwidth probe streams a buffer of up to 2 GiB")
	}
	gbs, err := bindings.ReadBandwidth(0, 50*time.Millisecond)
	require.NoError(t, err)
	assert.Greater(t, gbs, 0.1)
}
