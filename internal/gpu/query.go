package gpu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// inventory reads the system versions and every device from an initialised
// lib, stopping between devices if ctx is cancelled.
func inventory(ctx context.Context, lib nvml.Interface) (Inventory, error) {
	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return Inventory{}, fmt.Errorf("nvml device count: %w", ret)
	}
	inv := Inventory{
		DriverVersion:     driverVersion(ctx, lib),
		CUDADriverVersion: cudaDriverVersion(ctx, lib),
		Devices:           make([]Device, 0, count),
	}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return Inventory{}, fmt.Errorf("list gpus: stopped before device %d: %w", i, err)
		}
		dev, err := device(ctx, lib, i)
		if err != nil {
			return Inventory{}, err
		}
		inv.Devices = append(inv.Devices, dev)
	}
	return inv, nil
}

// driverVersion is optional: a listing without it is still useful.
func driverVersion(ctx context.Context, lib nvml.Interface) string {
	v, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		slog.DebugContext(ctx, "nvml driver version unavailable", "error", ret)
		return ""
	}
	return v
}

// cudaDriverVersion is optional for the same reason as driverVersion.
func cudaDriverVersion(ctx context.Context, lib nvml.Interface) int {
	v, ret := lib.SystemGetCudaDriverVersion()
	if ret != nvml.SUCCESS {
		slog.DebugContext(ctx, "nvml cuda driver version unavailable", "error", ret)
		return Unavailable
	}
	return v
}

// device reads one GPU. Name, UUID and memory are required because placement
// and display depend on them; the rest degrade to Unavailable.
func device(ctx context.Context, lib nvml.Interface, index int) (Device, error) {
	h, ret := lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("gpu %d: get handle: %w", index, ret)
	}
	name, ret := h.GetName()
	if ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("gpu %d: get name: %w", index, ret)
	}
	uuid, ret := h.GetUUID()
	if ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("gpu %d: get uuid: %w", index, ret)
	}
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("gpu %d: get memory info: %w", index, ret)
	}
	d := Device{
		Index:       index,
		UUID:        uuid,
		Name:        name,
		MemoryTotal: mem.Total,
		MemoryFree:  mem.Free,
		MemoryUsed:  mem.Used,
	}
	d.UtilizationGPU, d.UtilizationMemory = utilization(ctx, h, index)
	d.ComputeMajor, d.ComputeMinor = computeCapability(ctx, h, index)
	slog.DebugContext(ctx, "gpu found", "index", index, "name", name, "uuid", uuid,
		"memory_total", mem.Total, "memory_free", mem.Free)
	return d, nil
}

// utilization is optional: many GPUs (and vGPUs) answer NOT_SUPPORTED.
func utilization(ctx context.Context, h nvml.Device, index int) (gpuPct, memPct int) {
	u, ret := h.GetUtilizationRates()
	if ret != nvml.SUCCESS {
		slog.DebugContext(ctx, "gpu utilization unavailable", "index", index, "error", ret)
		return Unavailable, Unavailable
	}
	return int(u.Gpu), int(u.Memory)
}

// computeCapability is optional so one odd device doesn't hide the others.
func computeCapability(ctx context.Context, h nvml.Device, index int) (major, minor int) {
	major, minor, ret := h.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		slog.DebugContext(ctx, "gpu compute capability unavailable", "index", index, "error", ret)
		return Unavailable, Unavailable
	}
	return major, minor
}
