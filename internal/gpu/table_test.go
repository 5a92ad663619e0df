package gpu

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteTable(t *testing.T) {
	l4 := Device{
		Index: 1, UUID: "GPU-1", Name: "NVIDIA L4",
		MemoryTotal: 24 * gb, MemoryFree: 24*gb - 512<<20, MemoryUsed: 512 << 20,
		UtilizationGPU: Unavailable, UtilizationMemory: Unavailable,
		ComputeMajor: Unavailable, ComputeMinor: Unavailable,
	}
	tests := []struct {
		name string
		inv  Inventory
		want string
	}{
		{
			name: "devices",
			inv:  Inventory{DriverVersion: "550.54.15", CUDADriverVersion: 12040, Devices: []Device{h100(0), l4}},
			want: "" +
				"Driver: 550.54.15  CUDA: 12.4\n" +
				"INDEX  NAME                   UUID   MEMORY USED  MEMORY FREE  MEMORY TOTAL  GPU UTIL  MEM UTIL  COMPUTE\n" +
				"0      NVIDIA H100 80GB HBM3  GPU-0  1.0 GiB      79.0 GiB     80.0 GiB      42%       7%        9.0\n" +
				"1      NVIDIA L4              GPU-1  512 MiB      23.5 GiB     24.0 GiB      n/a       n/a       n/a\n",
		},
		{
			name: "no devices, versions unknown",
			inv:  Inventory{CUDADriverVersion: Unavailable},
			want: "Driver: n/a  CUDA: n/a\nNo NVIDIA GPUs found.\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			require.NoError(t, tc.inv.WriteTable(&b))
			assert.Equal(t, tc.want, b.String())
		})
	}
}

type failingWriter struct{}

var errDiskFull = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestWriteTableWriteError(t *testing.T) {
	err := Inventory{}.WriteTable(failingWriter{})
	assert.ErrorIs(t, err, errDiskFull)
}
