// Package gpu discovers NVIDIA GPUs through NVML and picks a device for a
// workload of a given size.
//
// NVML is reached through github.com/NVIDIA/go-nvml, which dlopens
// libnvidia-ml lazily. Any NVML call made without a successful Init jumps to an
// unresolved symbol and the dynamic linker kills the whole process, so every
// query here sits behind a successful Init and nothing is called after a
// failed one. The listing logic takes an nvml.Interface so that tests can
// inject the go-nvml mock instead of a real driver.
package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Unavailable marks an optional numeric field that the driver could not
// report for a device (for example utilization on GPUs that don't support it).
const Unavailable = -1

var (
	// ErrNoDriver means NVML could not be initialised: no driver, no
	// libnvidia-ml, no permission, or a driver/library mismatch. The wrapped
	// nvml.Return says which.
	ErrNoDriver = errors.New("nvidia driver unavailable")
	// ErrNoDevices means there is no device to place work on.
	ErrNoDevices = errors.New("no gpu devices")
	// ErrInsufficientMemory means no device has enough free memory.
	ErrInsufficientMemory = errors.New("insufficient gpu memory")
)

// Device is a snapshot of one GPU. Memory figures are in bytes.
type Device struct {
	Index       int
	UUID        string
	Name        string
	MemoryTotal uint64
	MemoryFree  uint64
	MemoryUsed  uint64
	// UtilizationGPU and UtilizationMemory are percentages over the driver's
	// last sample period, or Unavailable.
	UtilizationGPU    int
	UtilizationMemory int
	// ComputeMajor and ComputeMinor are the CUDA compute capability, or
	// Unavailable.
	ComputeMajor int
	ComputeMinor int
}

// Inventory is what the driver reported at one moment.
type Inventory struct {
	// DriverVersion is empty when the driver could not report it.
	DriverVersion string
	// CUDADriverVersion is encoded as 1000*major + 10*minor (12040 is 12.4),
	// as NVML reports it, or Unavailable.
	CUDADriverVersion int
	Devices           []Device
}

// realNVML is shared by every List call because go-nvml keeps its load state
// in package globals guarded per instance: one instance keeps concurrent
// Lists race-free. Other code in the process should list GPUs through this
// package rather than call nvml's package-level functions.
var realNVML = nvml.New()

// List queries the installed NVIDIA driver. Without a usable driver it
// returns an error matching ErrNoDriver.
func List(ctx context.Context) (Inventory, error) {
	return ListWith(ctx, realNVML)
}

// ListWith is List against any NVML implementation, such as the go-nvml mock.
// It initialises lib, queries it, and shuts it down again.
func ListWith(ctx context.Context, lib nvml.Interface) (Inventory, error) {
	if err := ctx.Err(); err != nil {
		return Inventory{}, fmt.Errorf("list gpus: %w", err)
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		// Return at once: NVML is not initialised, so there is nothing to
		// shut down, and any other call could hit an unresolved symbol.
		return Inventory{}, fmt.Errorf("%w: nvml init: %w", ErrNoDriver, ret)
	}
	defer shutdown(ctx, lib)
	return inventory(ctx, lib)
}

// shutdown releases NVML. A failure is only logged: the inventory already
// read is still valid and the caller can do nothing about it.
func shutdown(ctx context.Context, lib nvml.Interface) {
	if ret := lib.Shutdown(); ret != nvml.SUCCESS {
		slog.WarnContext(ctx, "nvml shutdown failed", "error", ret)
	}
}
