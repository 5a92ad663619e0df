package gpu

import (
	"context"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const gb = uint64(1) << 30

// fakeDevice is a healthy mock GPU; tests override single funcs to inject
// failures. Used memory is derived so the figures stay consistent.
func fakeDevice(name, uuid string, total, free uint64) *mock.Device {
	return &mock.Device{
		GetNameFunc: func() (string, nvml.Return) { return name, nvml.SUCCESS },
		GetUUIDFunc: func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: total, Free: free, Used: total - free}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: 42, Memory: 7}, nvml.SUCCESS
		},
		GetCudaComputeCapabilityFunc: func() (int, int, nvml.Return) { return 9, 0, nvml.SUCCESS },
	}
}

// fakeLib is an initialisable mock NVML serving devs by index.
func fakeLib(devs ...*mock.Device) *mock.Interface {
	return &mock.Interface{
		InitFunc:                       func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:                   func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc:     func() (string, nvml.Return) { return "550.54.15", nvml.SUCCESS },
		SystemGetCudaDriverVersionFunc: func() (int, nvml.Return) { return 12040, nvml.SUCCESS },
		DeviceGetCountFunc:             func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
	}
}

// failedInit leaves every other func nil: the mock panics if one is called,
// which is exactly the call that would kill a real process.
func failedInit(ret nvml.Return) *mock.Interface {
	return &mock.Interface{InitFunc: func() nvml.Return { return ret }}
}

func h100(index int) Device {
	return Device{
		Index: index, UUID: "GPU-0", Name: "NVIDIA H100 80GB HBM3",
		MemoryTotal: 80 * gb, MemoryFree: 79 * gb, MemoryUsed: 1 * gb,
		UtilizationGPU: 42, UtilizationMemory: 7, ComputeMajor: 9, ComputeMinor: 0,
	}
}

func TestListWith(t *testing.T) {
	tests := []struct {
		name string
		// lib builds the mock; cancel cancels the context passed to ListWith.
		lib      func(cancel context.CancelFunc) *mock.Interface
		precheck bool // cancel before calling ListWith
		wantErr  []error
		wantMsg  string
		want     Inventory
		// initOK says whether Init succeeded, and so Shutdown must follow.
		initOK bool
		check  func(t *testing.T, m *mock.Interface)
	}{
		{
			name:    "library missing",
			lib:     func(context.CancelFunc) *mock.Interface { return failedInit(nvml.ERROR_LIBRARY_NOT_FOUND) },
			wantErr: []error{ErrNoDriver, nvml.ERROR_LIBRARY_NOT_FOUND},
		},
		{
			name:    "driver not loaded",
			lib:     func(context.CancelFunc) *mock.Interface { return failedInit(nvml.ERROR_DRIVER_NOT_LOADED) },
			wantErr: []error{ErrNoDriver, nvml.ERROR_DRIVER_NOT_LOADED},
		},
		{
			name:   "no devices",
			lib:    func(context.CancelFunc) *mock.Interface { return fakeLib() },
			initOK: true,
			want:   Inventory{DriverVersion: "550.54.15", CUDADriverVersion: 12040, Devices: []Device{}},
		},
		{
			name: "two devices with different memory",
			lib: func(context.CancelFunc) *mock.Interface {
				return fakeLib(
					fakeDevice("NVIDIA H100 80GB HBM3", "GPU-0", 80*gb, 79*gb),
					fakeDevice("NVIDIA L4", "GPU-1", 24*gb, 20*gb),
				)
			},
			initOK: true,
			want: Inventory{DriverVersion: "550.54.15", CUDADriverVersion: 12040, Devices: []Device{
				h100(0),
				{
					Index: 1, UUID: "GPU-1", Name: "NVIDIA L4",
					MemoryTotal: 24 * gb, MemoryFree: 20 * gb, MemoryUsed: 4 * gb,
					UtilizationGPU: 42, UtilizationMemory: 7, ComputeMajor: 9, ComputeMinor: 0,
				},
			}},
		},
		{
			name: "optional fields unsupported",
			lib: func(context.CancelFunc) *mock.Interface {
				d := fakeDevice("NVIDIA H100 80GB HBM3", "GPU-0", 80*gb, 79*gb)
				d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
					return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED
				}
				d.GetCudaComputeCapabilityFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
				m := fakeLib(d)
				m.SystemGetDriverVersionFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
				m.SystemGetCudaDriverVersionFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
				return m
			},
			initOK: true,
			want: Inventory{DriverVersion: "", CUDADriverVersion: Unavailable, Devices: []Device{{
				Index: 0, UUID: "GPU-0", Name: "NVIDIA H100 80GB HBM3",
				MemoryTotal: 80 * gb, MemoryFree: 79 * gb, MemoryUsed: 1 * gb,
				UtilizationGPU: Unavailable, UtilizationMemory: Unavailable,
				ComputeMajor: Unavailable, ComputeMinor: Unavailable,
			}}},
		},
		{
			name: "name fails",
			lib: func(context.CancelFunc) *mock.Interface {
				d := fakeDevice("NVIDIA L4", "GPU-1", 24*gb, 20*gb)
				d.GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
				return fakeLib(fakeDevice("NVIDIA H100 80GB HBM3", "GPU-0", 80*gb, 79*gb), d)
			},
			initOK:  true,
			wantErr: []error{nvml.ERROR_GPU_IS_LOST},
			wantMsg: "gpu 1: get name",
		},
		{
			name: "uuid fails",
			lib: func(context.CancelFunc) *mock.Interface {
				d := fakeDevice("NVIDIA L4", "GPU-0", 24*gb, 20*gb)
				d.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
				return fakeLib(d)
			},
			initOK:  true,
			wantErr: []error{nvml.ERROR_UNKNOWN},
			wantMsg: "gpu 0: get uuid",
		},
		{
			name: "memory fails",
			lib: func(context.CancelFunc) *mock.Interface {
				d := fakeDevice("NVIDIA L4", "GPU-0", 24*gb, 20*gb)
				d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_NO_PERMISSION }
				return fakeLib(d)
			},
			initOK:  true,
			wantErr: []error{nvml.ERROR_NO_PERMISSION},
			wantMsg: "gpu 0: get memory info",
		},
		{
			name: "handle fails",
			lib: func(context.CancelFunc) *mock.Interface {
				m := fakeLib()
				m.DeviceGetCountFunc = func() (int, nvml.Return) { return 1, nvml.SUCCESS }
				return m
			},
			initOK:  true,
			wantErr: []error{nvml.ERROR_INVALID_ARGUMENT},
			wantMsg: "gpu 0: get handle",
		},
		{
			name: "device count fails",
			lib: func(context.CancelFunc) *mock.Interface {
				m := fakeLib()
				m.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
				return m
			},
			initOK:  true,
			wantErr: []error{nvml.ERROR_UNKNOWN},
			wantMsg: "nvml device count",
		},
		{
			name:     "cancelled before start",
			lib:      func(context.CancelFunc) *mock.Interface { return &mock.Interface{} },
			precheck: true,
			wantErr:  []error{context.Canceled},
			check: func(t *testing.T, m *mock.Interface) {
				assert.Empty(t, m.InitCalls(), "a cancelled listing must not touch NVML")
			},
		},
		{
			name: "cancelled between devices",
			lib: func(cancel context.CancelFunc) *mock.Interface {
				d := fakeDevice("NVIDIA H100 80GB HBM3", "GPU-0", 80*gb, 79*gb)
				d.GetNameFunc = func() (string, nvml.Return) {
					cancel()
					return "NVIDIA H100 80GB HBM3", nvml.SUCCESS
				}
				return fakeLib(d, fakeDevice("NVIDIA L4", "GPU-1", 24*gb, 20*gb))
			},
			initOK:  true,
			wantErr: []error{context.Canceled},
			wantMsg: "before device 1",
			check: func(t *testing.T, m *mock.Interface) {
				assert.Len(t, m.DeviceGetHandleByIndexCalls(), 1, "device 1 must not be queried")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			m := tc.lib(cancel)
			if tc.precheck {
				cancel()
			}

			got, err := ListWith(ctx, m)

			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tc.wantErr {
					assert.ErrorIs(t, err, want)
				}
				assert.Contains(t, err.Error(), tc.wantMsg)
				assert.Zero(t, got)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			}
			if tc.initOK {
				assert.Len(t, m.ShutdownCalls(), 1, "a successful Init must be paired with Shutdown")
			} else {
				// Any call after a failed Init would abort a real process.
				assert.Empty(t, m.ShutdownCalls())
				assert.Empty(t, m.DeviceGetCountCalls())
				assert.Empty(t, m.SystemGetDriverVersionCalls())
				assert.Empty(t, m.SystemGetCudaDriverVersionCalls())
				assert.Empty(t, m.DeviceGetHandleByIndexCalls())
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestListWithShutdownFailureKeepsInventory(t *testing.T) {
	m := fakeLib(fakeDevice("NVIDIA H100 80GB HBM3", "GPU-0", 80*gb, 79*gb))
	m.ShutdownFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN }

	got, err := ListWith(t.Context(), m)

	require.NoError(t, err)
	assert.Equal(t, []Device{h100(0)}, got.Devices)
}

// TestListReal runs against whatever this machine has. Without a driver it
// must fail cleanly with ErrNoDriver rather than crash the test binary; with
// one, the inventory must be plausible. It lists repeatedly and concurrently
// because the shared NVML instance is refcounted across calls.
func TestListReal(t *testing.T) {
	results := make(chan error, 4)
	for range cap(results) {
		go func() {
			inv, err := List(t.Context())
			if err == nil {
				assertSane(t, inv)
			}
			results <- err
		}()
	}
	for range cap(results) {
		err := <-results
		if err != nil {
			require.ErrorIs(t, err, ErrNoDriver)
			t.Logf("no usable NVIDIA driver: %v", err)
		}
	}
}

func assertSane(t *testing.T, inv Inventory) {
	assert.NotEmpty(t, inv.DriverVersion)
	for i, d := range inv.Devices {
		assert.Equal(t, i, d.Index)
		assert.NotEmpty(t, d.Name)
		assert.NotEmpty(t, d.UUID)
		assert.Positive(t, d.MemoryTotal)
		assert.LessOrEqual(t, d.MemoryFree, d.MemoryTotal)
	}
}
