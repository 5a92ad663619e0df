package gpu

import "fmt"

// PickDevice returns the device with the most free memory, provided it has at
// least needBytes free. Most-free placement leaves the most headroom for the
// KV cache to grow; ties go to the lowest index so the choice is stable.
func PickDevice(inv Inventory, needBytes uint64) (Device, error) {
	if len(inv.Devices) == 0 {
		return Device{}, ErrNoDevices
	}
	best := inv.Devices[0]
	for _, d := range inv.Devices[1:] {
		if d.MemoryFree > best.MemoryFree || (d.MemoryFree == best.MemoryFree && d.Index < best.Index) {
			best = d
		}
	}
	if best.MemoryFree < needBytes {
		return Device{}, fmt.Errorf("%w: need %d bytes (%s), most free is gpu %d with %d bytes (%s)",
			ErrInsufficientMemory, needBytes, formatBytes(needBytes),
			best.Index, best.MemoryFree, formatBytes(best.MemoryFree))
	}
	return best, nil
}
