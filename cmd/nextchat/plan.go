package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/engine"
)

// planLine is one line of a memory plan: what, where it lives (host or device) and its bytes.
type planLine struct {
	Item  string `json:"item"`
	Where string `json:"where"`
	Bytes uint64 `json:"bytes"`
}

// planReport is `nextchat info --plan`'s output, and its --json form.
type planReport struct {
	Backend     string     `json:"backend"`
	Context     int64      `json:"context"`
	Sequences   int        `json:"sequences"`
	StepRows    int        `json:"step_rows"`
	Images      int        `json:"images_per_call"`
	Locations   int        `json:"locations_per_call"`
	KVDType     string     `json:"kv_dtype"`
	KVBlockSize int        `json:"kv_block_size"`
	KVBlocks    int64      `json:"kv_blocks"`
	Threads     int        `json:"threads"`
	Lines       []planLine `json:"lines"`
	HostBytes   uint64     `json:"host_bytes"`
	DeviceBytes uint64     `json:"device_bytes"`
	Note        string     `json:"note,omitempty"`
}

// cudaPlanNote says what a GPU plan is while the CUDA model kernels do not exist.
const cudaPlanNote = "GPU plan: the layout the CUDA backend will use (weights, KV cache and workspace in device memory, " +
	"no op scratch beyond the workspace); this build has no CUDA model kernels, so opening a model on CUDA is refused"

// newPlanReport lays a plan out as lines: weights per component, derived tables, KV cache, each stage's workspace
// and op scratch, sequences, the image caches. Lines of zero bytes are left out.
func newPlanReport(p bindings.Plan) planReport {
	r := p.Request
	model := "host"
	if r.Backend == bindings.CUDA {
		model = "device"
	}
	var lines []planLine
	add := func(item, where string, b uint64) {
		if b > 0 {
			lines = append(lines, planLine{Item: item, Where: where, Bytes: b})
		}
	}
	for _, c := range bindings.Components() {
		add("weights "+c.String(), model, p.WeightBytes[c])
	}
	for _, s := range bindings.Stages() {
		add("derived tables "+s.String(), model, p.DerivedBytes[s])
	}
	add(fmt.Sprintf("KV cache (%d blocks of %d positions)", p.KVBlocks, r.KVBlockSize), model, p.KVBytes)
	for _, s := range bindings.Stages() {
		add("workspace "+s.String(), model, p.WorkspaceBytes[s])
	}
	for _, s := range bindings.Stages() {
		add("op scratch "+s.String(), model, p.ScratchBytes[s])
	}
	add(fmt.Sprintf("sequences (%d)", r.MaxSequences), "host", p.SequenceBytes)
	add(fmt.Sprintf("CLIP feature cache (%d images)", r.FeatureCacheImages), "host", p.FeatureCacheBytes)
	add(fmt.Sprintf("SAM embedding cache (%d images)", r.SAMCacheImages), "host", p.SAMCacheBytes)
	rep := planReport{Backend: strings.ToLower(r.Backend.String()), Context: r.MaxContext, Sequences: r.MaxSequences,
		StepRows: r.MaxStepRows, Images: r.MaxImages, Locations: r.MaxLocations,
		KVDType: strings.ToLower(r.KVDType.String()), KVBlockSize: r.KVBlockSize, KVBlocks: p.KVBlocks, Threads: r.Threads,
		Lines: lines, HostBytes: p.HostBytes, DeviceBytes: p.DeviceBytes}
	if r.Backend == bindings.CUDA {
		rep.Note = cudaPlanNote
	}
	return rep
}

// gib renders bytes in GiB with three decimals.
func gib(b uint64) string { return fmt.Sprintf("%.3f", float64(b)/(1<<30)) }

func writePlan(w io.Writer, r planReport) error {
	fmt.Fprintf(w, "memory plan: %s, context %d × %d sequences, %d rows per step, %d images and %d locations per call, "+
		"KV %s in blocks of %d\n", r.Backend, r.Context, r.Sequences, r.StepRows, r.Images, r.Locations, r.KVDType, r.KVBlockSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(item, where string, b uint64) {
		fmt.Fprintf(tw, "%s\t%s\t%18s\t%9s\n", item, where, groupDigits(int64(b)), gib(b))
	}
	fmt.Fprintf(tw, "item\twhere\t%18s\t%9s\n", "bytes", "GiB")
	for _, l := range r.Lines {
		row(l.Item, l.Where, l.Bytes)
	}
	row("host total", "", r.HostBytes)
	if r.DeviceBytes > 0 {
		row("device total", "", r.DeviceBytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Note != "" {
		fmt.Fprintln(w, r.Note)
	}
	return nil
}

// planOptions are the engine options `info --plan` plans for: the same mapping to a plan request as the engine's.
func planOptions(ctx, batch, threads int, kv bindings.DType, backend bindings.Backend) engine.Options {
	o := engine.DefaultOptions()
	o.Backend, o.Threads, o.KVDType, o.ContextTokens, o.MaxSequences = backend, threads, kv, ctx, batch
	return o
}

// reportPeakRSS prints the process's peak resident set (getrusage: every page it touched, mapped weight pages
// included) next to the plan's host total.
func reportPeakRSS(w io.Writer, p bindings.Plan) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fmt.Fprintf(w, "peak RSS: unavailable (%v)\n", err)
		return
	}
	peak := uint64(ru.Maxrss) * 1024 // KiB on Linux
	fmt.Fprintf(w, "peak RSS %d bytes (%s GiB), plan host total %d bytes (%s GiB), RSS/plan %.4f\n", peak, gib(peak),
		p.HostBytes, gib(p.HostBytes), float64(peak)/float64(p.HostBytes))
	// Where the resident pages are now: file-backed (the mapped weights) and anonymous (everything allocated,
	// the Go runtime's share included), for explaining the difference from the plan.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "resident now: file-backed %s, anonymous %s (Go runtime %d bytes from the OS); plan: weights %d, "+
		"the rest %d bytes\n", procStatus("RssFile"), procStatus("RssAnon"), ms.Sys, p.WeightsTotal, p.HostBytes-p.WeightsTotal)
}

// procStatus is a field of /proc/self/status in bytes ("unknown" where there is none).
func procStatus(field string) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kib uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err == nil {
				return fmt.Sprintf("%d bytes", kib*1024)
			}
		}
	}
	return "unknown"
}
