package gpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPickDevice(t *testing.T) {
	dev := func(index int, free uint64) Device { return Device{Index: index, MemoryFree: free} }
	tests := []struct {
		name      string
		devices   []Device
		need      uint64
		wantIndex int
		wantErr   error
		wantMsg   string
	}{
		{name: "empty inventory", need: 1, wantErr: ErrNoDevices},
		{name: "single fits", devices: []Device{dev(0, 10*gb)}, need: 4 * gb, wantIndex: 0},
		{name: "exact fit", devices: []Device{dev(0, 4*gb)}, need: 4 * gb, wantIndex: 0},
		{name: "zero need", devices: []Device{dev(0, 0), dev(1, 1)}, need: 0, wantIndex: 1},
		{name: "most free wins", devices: []Device{dev(0, 10*gb), dev(1, 30*gb), dev(2, 20*gb)}, need: 4 * gb, wantIndex: 1},
		{name: "tie goes to lowest index", devices: []Device{dev(2, 30*gb), dev(1, 30*gb), dev(0, 10*gb)}, need: 4 * gb, wantIndex: 1},
		{
			name:    "none fits",
			devices: []Device{dev(0, 6*gb), dev(1, 8*gb)},
			need:    10 * gb,
			wantErr: ErrInsufficientMemory,
			wantMsg: "need 10737418240 bytes (10.0 GiB), most free is gpu 1 with 8589934592 bytes (8.0 GiB)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PickDevice(Inventory{Devices: tc.devices}, tc.need)

			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Contains(t, err.Error(), tc.wantMsg)
				assert.Zero(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantIndex, got.Index)
		})
	}
}
