package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/progress"
)

// infoReport is what `nextchat info` prints, and its --json form.
type infoReport struct {
	Model          string            `json:"model"`
	Files          int               `json:"files"`
	MappedBytes    uint64            `json:"mapped_bytes"`
	TensorsByDType map[string]int    `json:"tensors_by_dtype"`
	Synthetic      string            `json:"synthetic,omitempty"`
	Components     []componentReport `json:"components"`
	UsedParams     int64             `json:"used_params"`
	StoredParams   int64             `json:"stored_params"`
	WeightBytes    uint64            `json:"weight_bytes"`
	UnusedBytes    uint64            `json:"unused_bytes"`
	Unused         []string          `json:"unused_tensors"`
	Unknown        []string          `json:"unknown_tensors"`
	Buffers        []string          `json:"buffers"` // non-float tensors the spec does not name, set aside
	KVPerToken     map[string]uint64 `json:"kv_bytes_per_token"`
	ImageTokens    int               `json:"image_tokens"`
	LoadSeconds    float64           `json:"load_seconds"`
	// Matrices the engine multiplies that their files place off a cache line (modeldir.MisalignedMatrices).
	MisalignedMatrices int            `json:"misaligned_matrices"`
	MisalignedBytes    int64          `json:"misaligned_bytes"`
	Architecture       map[string]any `json:"architecture"`
}

type componentReport struct {
	Name    string           `json:"name"`
	Params  int64            `json:"params"`
	Bytes   uint64           `json:"bytes"`
	ByDType map[string]int64 `json:"params_by_dtype"`
}

func infoCommand() command {
	return command{
		name:    "info",
		summary: "describe a model directory: parameters per component, dtypes, weight memory, KV cache per token; with --plan the exact memory plan for a context and batch",
		usage:   "--model DIR [--json] [--plan --ctx N --batch B [--step-rows R] [--kv-dtype f16|bf16|f32] [--device cpu|cuda] [--threads T] [--llm-weights stored|compact|int8]]",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			model := fs.String("model", "", "model directory (config.json, *.safetensors, tokenizer.model)")
			asJSON := fs.Bool("json", false, "print a machine-readable report")
			plan := fs.Bool("plan", false, "print the memory plan (weights, KV cache, workspace, op scratch, image caches) the engine reserves")
			ctxTokens := fs.Int("ctx", 0, "--plan: positions per sequence (0 = the model's maximum)")
			batch := fs.Int("batch", 1, "--plan: sequences at once")
			stepRows := fs.Int("step-rows", 0, "--plan: prompt rows of one step, all sequences together (0 = --ctx × --batch; serve's default is --ctx)")
			kvDType := fs.String("kv-dtype", "f16", "--plan: KV cache dtype: f16, bf16 or f32")
			device := fs.String("device", "cpu", "--plan: cpu, or cuda for the layout the CUDA backend will use")
			threads := fs.Int("threads", 0, "--plan: CPU threads per op pool (0 = all)")
			var weights llmWeightsFlags
			weights.register(fs, "--plan, which re-codes the weights to count their bytes: ")
			return func(_ context.Context, e *env, args []string) error {
				if *model == "" || len(args) > 0 {
					return usageError("info needs --model DIR and no arguments")
				}
				if *plan {
					kv, err := bindings.ParseDType(*kvDType)
					if err != nil {
						return usageError("%v", err)
					}
					backend, err := bindings.ParseBackend(*device)
					if err != nil {
						return usageError("%v", err)
					}
					if *batch < 1 || *ctxTokens < 0 || *threads < 0 || *stepRows < 0 {
						return usageError("--plan needs --batch ≥ 1, --ctx ≥ 0, --step-rows ≥ 0 and --threads ≥ 0")
					}
					o := planOptions(*ctxTokens, *batch, *threads, kv, backend)
					held, err := weights.value()
					if err != nil {
						return err
					}
					o.MaxStepRows, o.LLMWeights = *stepRows, held
					p, err := buildPlan(*model, o)
					if err != nil {
						return err
					}
					return printReport(e.stdout, *asJSON, p, func() error { return writePlan(e.stdout, p) })
				}
				r, err := buildInfo(*model)
				if err != nil {
					return err
				}
				return printReport(e.stdout, *asJSON, r, func() error {
					return writeInfo(e.stdout, r, fs.Lookup("verbose").Value.String() == "true")
				})
			}
		},
	}
}

// printReport writes a command's report: v as indented JSON, or the text writer's output.
func printReport(w io.Writer, asJSON bool, v any, text func() error) error {
	if !asJSON {
		return text()
	}
	return printJSON(w, v)
}

// buildInfo opens the directory, loads the weights (a memory map: seconds even for 7B) so the core checks
// every tensor, and gathers the report.
func buildInfo(path string) (infoReport, error) {
	d, err := modeldir.Open(path)
	if err != nil {
		return infoReport{}, err
	}
	spec, err := bindings.Spec(d.Config)
	if err != nil {
		return infoReport{}, err
	}
	start := time.Now()
	m, err := d.Load(bindings.CPU, 0)
	if err != nil {
		return infoReport{}, err
	}
	defer m.Close()
	loadSeconds := time.Since(start).Seconds()
	inv := d.Inventory(spec)
	r := infoReport{
		Model:              d.Path,
		Files:              len(d.Files),
		TensorsByDType:     inv.TensorsByType,
		UsedParams:         inv.UsedParams,
		StoredParams:       inv.StoredParams,
		Unused:             inv.Unused,
		Unknown:            inv.Unknown,
		Buffers:            bufferNames(d),
		KVPerToken:         map[string]uint64{},
		ImageTokens:        d.Config.ImageTokens(),
		LoadSeconds:        loadSeconds,
		MisalignedMatrices: inv.Misaligned,
		MisalignedBytes:    inv.MisalignedBytes,
		Synthetic:          d.Headers[0].Metadata["nextchat.synthetic"],
		Architecture: map[string]any{
			"llm":    fmt.Sprintf("LLaMA %d×%d, %d heads (%d KV), MLP %d, vocab %d", d.Config.NumHiddenLayers, d.Config.HiddenSize, d.Config.NumAttentionHeads, d.Config.NumKeyValueHeads, d.Config.IntermediateSize, d.Config.VocabSize),
			"vision": fmt.Sprintf("CLIP ViT %d×%d, %d heads, %dpx/%d", d.Config.Vision.NumHiddenLayers, d.Config.Vision.HiddenSize, d.Config.Vision.NumAttentionHeads, d.Config.Vision.ImageSize, d.Config.Vision.PatchSize),
			"sam":    fmt.Sprintf("SAM ViT %d×%d, %d heads, %dpx/%d, window %d, global %v", d.Config.SAM.EncoderDepth, d.Config.SAM.EncoderEmbedDim, d.Config.SAM.EncoderNumHeads, d.Config.SAM.ImageSize, d.Config.SAM.PatchSize, d.Config.SAM.WindowSize, d.Config.SAM.GlobalAttnIndexes),
		},
	}
	for _, kv := range []bindings.DType{bindings.BF16, bindings.F16, bindings.F32} {
		mem, err := m.Memory(kv)
		if err != nil {
			return infoReport{}, err
		}
		r.KVPerToken[strings.ToLower(kv.String())] = mem.KVBytesPerToken
		r.WeightBytes, r.UnusedBytes, r.MappedBytes = mem.WeightBytesTotal, mem.UnusedBytes, mem.MappedBytes
		if kv == bindings.BF16 {
			for _, c := range inv.Components {
				r.Components = append(r.Components, componentReport{
					Name: c.Component.String(), Params: c.Params, Bytes: mem.WeightBytes[c.Component], ByDType: c.ByDType,
				})
			}
		}
	}
	return r, nil
}

// buildPlan loads the model on the CPU (plans for a GPU need only its dimensions) and computes the plan the engine
// would reserve with these options.
func buildPlan(path string, o engine.Options) (planReport, error) {
	d, err := modeldir.Open(path)
	if err != nil {
		return planReport{}, err
	}
	m, err := bindings.OpenModel(bindings.ModelParams{Config: d.Config, Files: d.Files, Tensors: d.Refs(),
		Backend: bindings.CPU, LLMWeights: o.LLMWeights})
	if err != nil {
		return planReport{}, fmt.Errorf("load %s: %w", d.Path, err)
	}
	defer m.Close()
	p, err := m.Plan(o.PlanRequest())
	if err != nil {
		return planReport{}, err
	}
	return newPlanReport(p), nil
}

func writeInfo(w io.Writer, r infoReport, verbose bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", r.Model)
	if r.Synthetic != "" {
		fmt.Fprintf(tw, "weights\tSYNTHETIC (%s)\n", r.Synthetic)
	}
	for _, k := range []string{"llm", "vision", "sam"} {
		fmt.Fprintf(tw, "%s\t%s\n", k, r.Architecture[k])
	}
	fmt.Fprintf(tw, "image tokens\t%d per image\n", r.ImageTokens)
	fmt.Fprintf(tw, "files\t%d, %s mapped, tensors by dtype: %s\n", r.Files, progress.FormatBytes(int64(r.MappedBytes)), formatCounts(r.TensorsByDType))
	fmt.Fprintf(tw, "\ncomponent\tparameters\tweight memory\tdtypes\n")
	for _, c := range r.Components {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, groupDigits(c.Params), progress.FormatBytes(int64(c.Bytes)), formatDTypes(c.ByDType))
	}
	fmt.Fprintf(tw, "total used\t%s\t%s (%d bytes)\t\n", groupDigits(r.UsedParams), progress.FormatBytes(int64(r.WeightBytes)), r.WeightBytes)
	fmt.Fprintf(tw, "total stored\t%s\t\t\n", groupDigits(r.StoredParams))
	fmt.Fprintf(tw, "\nunused tensors\t%d (%s), never read\n", len(r.Unused), progress.FormatBytes(int64(r.UnusedBytes)))
	fmt.Fprintf(tw, "unknown tensors\t%d, ignored\n", len(r.Unknown))
	if len(r.Buffers) > 0 {
		fmt.Fprintf(tw, "buffers\t%d (not F32/F16/BF16, not in the spec: %s), ignored\n", len(r.Buffers), strings.Join(r.Buffers, ", "))
	}
	fmt.Fprintf(tw, "KV cache\t%s/token bf16, %s/token f16, %s/token f32\n", formatBinary(r.KVPerToken["bf16"]), formatBinary(r.KVPerToken["f16"]), formatBinary(r.KVPerToken["f32"]))
	fmt.Fprintf(tw, "load\t%.3f s (memory-mapped, every tensor checked)\n", r.LoadSeconds)
	if advice := modeldir.AlignmentAdvice(r.MisalignedMatrices, r.MisalignedBytes); advice != "" {
		fmt.Fprintf(tw, "alignment\t%s\n", advice)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if verbose {
		for _, n := range r.Unused {
			fmt.Fprintf(w, "unused: %s\n", n)
		}
		for _, n := range r.Unknown {
			fmt.Fprintf(w, "unknown: %s\n", n)
		}
	}
	return nil
}

// formatBinary renders KV sizes in the binary units MODEL_SPEC uses ("0.5 MiB/token").
func formatBinary(b uint64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.4g MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.4g KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func formatDTypes(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// groupDigits writes 7742043208 as 7,742,043,208.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// bufferNames are the directory's set-aside tensors (modeldir.Dir.Buffers).
func bufferNames(d *modeldir.Dir) []string {
	names := make([]string, len(d.Buffers))
	for i, b := range d.Buffers {
		names[i] = b.Name
	}
	return names
}
