package gpu

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// WriteTable writes the inventory as an aligned table for `nextchat gpus`.
func (inv Inventory) WriteTable(w io.Writer) error {
	// Render into memory first so there is a single write, and a single
	// error, to deal with.
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Driver: %s  CUDA: %s\n", orNA(inv.DriverVersion), cudaVersion(inv.CUDADriverVersion))
	if len(inv.Devices) == 0 {
		buf.WriteString("No NVIDIA GPUs found.\n")
	} else {
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INDEX\tNAME\tUUID\tMEMORY USED\tMEMORY FREE\tMEMORY TOTAL\tGPU UTIL\tMEM UTIL\tCOMPUTE")
		for _, d := range inv.Devices {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				d.Index, d.Name, d.UUID,
				formatBytes(d.MemoryUsed), formatBytes(d.MemoryFree), formatBytes(d.MemoryTotal),
				percent(d.UtilizationGPU), percent(d.UtilizationMemory),
				computeCapabilityString(d.ComputeMajor, d.ComputeMinor))
		}
		// Writes into a bytes.Buffer cannot fail, so Flush cannot either.
		_ = tw.Flush()
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write gpu table: %w", err)
	}
	return nil
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

// formatBytes keeps small figures readable in MiB; GPU-sized ones read
// better in GiB.
func formatBytes(n uint64) string {
	if n < gib {
		return fmt.Sprintf("%d MiB", n/mib)
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/gib)
}

func percent(p int) string {
	if p == Unavailable {
		return "n/a"
	}
	return strconv.Itoa(p) + "%"
}

func computeCapabilityString(major, minor int) string {
	if major == Unavailable {
		return "n/a"
	}
	return fmt.Sprintf("%d.%d", major, minor)
}

// cudaVersion decodes NVML's 1000*major + 10*minor encoding.
func cudaVersion(v int) string {
	if v == Unavailable {
		return "n/a"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}
