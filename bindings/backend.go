package bindings

// #include "nextchat.h"
import "C"

import "fmt"

// Backend is a compute backend of the core.
type Backend int

const (
	CPU  Backend = C.NC_BACKEND_CPU
	CUDA Backend = C.NC_BACKEND_CUDA
)

func (b Backend) String() string {
	switch b {
	case CPU:
		return "cpu"
	case CUDA:
		return "cuda"
	}
	return fmt.Sprintf("backend(%d)", int(b))
}

// ParseBackend reads "cpu" or "cuda".
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "cpu":
		return CPU, nil
	case "cuda":
		return CUDA, nil
	}
	return 0, fmt.Errorf("unknown backend %q (want cpu or cuda)", s)
}

// BackendInfo says whether a backend is compiled in and how many devices it can use now.
type BackendInfo struct {
	Backend  Backend
	Compiled bool
	Devices  int
}

// Backends lists every backend the core knows, compiled in or not.
func Backends() ([]BackendInfo, error) {
	var out []BackendInfo
	for _, b := range []Backend{CPU, CUDA} {
		info := BackendInfo{Backend: b, Compiled: C.nc_backend_compiled(C.int32_t(b)) != 0}
		if info.Compiled {
			n, err := deviceCount(b)
			if err != nil {
				return nil, fmt.Errorf("count %s devices: %w", b, err)
			}
			info.Devices = n
		}
		out = append(out, info)
	}
	return out, nil
}

func deviceCount(b Backend) (int, error) {
	var n C.int32_t
	if err := call(func() C.nc_status { return C.nc_backend_device_count(C.int32_t(b), &n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}
