package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/modeldir"
)

// benchmark is one stage `nextchat bench NAME` can measure. Adding one (llm, sam) is one entry and one function.
type benchmark struct {
	name    string
	summary string
	run     func(ctx context.Context, o benchOptions) (benchReport, error)
}

func benchmarks() []benchmark {
	return []benchmark{
		{"vision", "CLIP tower + projector on synthetic CLIP-normalized images (MODEL_SPEC §1.2, §1.3)", benchVision},
		{"llm", "LLaMA prefill, then decode (greedy, or sampled with --temperature) with the KV cache at each --batches size (MODEL_SPEC §1.1)", benchLLM},
		{"chat", "time to the first token of a question about an image and of a follow-up on its cached prefix, then --batches concurrent answers (engine, real tokenizer)", benchChat},
		{"serve", "the HTTP server on loopback: --batches clients streaming answers about one image at once, against the same answers through the engine (real tokenizer)", benchServe},
		{"sam", "SAM image encoder, then prompt encoder + mask decoder over --prompts locations (MODEL_SPEC §4, §5)", benchSAM},
	}
}

// benchOptions are the flags every benchmark reads (each uses those that apply to it).
type benchOptions struct {
	model        string
	threads      int
	images       int
	prompts      int
	samEncoder   bool
	tokens       int
	steps        int
	batches      []int
	repeat       int
	probeSeconds float64
	kvDType      string
	temperature  float32 // llm: 0 = greedy decode
	topK         int
	topP         float32
	prefillChunk int                 // chat: engine.Options.PrefillChunk
	weights      bindings.LLMWeights // llm, chat, serve: engine.Options.LLMWeights
}

// benchReport is what a benchmark prints, and its --json form. Work is counted from the config as the FLOPs of
// the matrix products (2 per multiply-add); elementwise ops are not counted.
type benchReport struct {
	Benchmark      string    `json:"benchmark"`
	Model          string    `json:"model"`
	Synthetic      bool      `json:"synthetic"`
	Threads        int       `json:"threads"`
	Unit           string    `json:"unit"`
	ItemsPerRun    int       `json:"items_per_run"`
	RunSeconds     []float64 `json:"run_seconds"`
	ItemsPerSecond float64   `json:"items_per_second"` // from the fastest run
	FLOPPerItem    float64   `json:"flop_per_item"`
	GFLOPS         float64   `json:"gflop_per_second"`
	FMAPeakGFLOPS  float64   `json:"fma_peak_gflop_per_second"` // measured in the same process, same threads
	PercentOfPeak  float64   `json:"percent_of_fma_peak"`
	// Where the kernels use the AMX tiles: their bf16 peak measured now, and the achieved rate against the ceiling
	// of the float32-exact products the kernels make there (three tile products each: a third of the peak).
	AMXPeakGFLOPS     float64        `json:"amx_peak_gflop_per_second,omitempty"`
	PercentOfAMXExact float64        `json:"percent_of_amx_exact_peak,omitempty"`
	Shape             map[string]int `json:"shape"`
	KVDType           string         `json:"kv_dtype,omitempty"`            // llm: the KV cache's dtype
	Sampling          string         `json:"sampling,omitempty"`            // llm: how decode steps chose tokens
	LLMWeights        string         `json:"llm_weights,omitempty"`         // llm, chat, serve: --llm-weights when not "stored"
	MeanBatch         float64        `json:"mean_batch,omitempty"`          // chat: sequences per engine step
	LongestGapSeconds float64        `json:"longest_gap_seconds,omitempty"` // chat: a streaming answer's longest wait
	FirstTokenSeconds float64        `json:"first_token_seconds,omitempty"` // serve: clients' mean wait for text
	Date              string         `json:"date"`
	Stages            []benchReport  `json:"stages,omitempty"` // further stages measured in the same run (sam: the decoder)
	// Memory-bound stages (LLM decode): bytes read per item and the rate against the read bandwidth measured
	// in the same run.
	BytesPerItem       float64 `json:"bytes_per_item,omitempty"`
	GBPerSecond        float64 `json:"gb_per_second,omitempty"`
	ReadBandwidthGBps  float64 `json:"read_bandwidth_gb_per_second,omitempty"`
	PercentOfBandwidth float64 `json:"percent_of_read_bandwidth,omitempty"`
}

func benchCommand() command {
	var names, listing []string
	for _, b := range benchmarks() {
		names = append(names, b.name)
		listing = append(listing, fmt.Sprintf("  %-8s %s", b.name, b.summary))
	}
	known := "benchmarks:\n" + strings.Join(listing, "\n")
	return command{
		name:    "bench",
		summary: "measure a stage's throughput against this machine's measured FMA peak (" + strings.Join(names, ", ") + ")",
		usage:   strings.Join(names, "|") + " --model DIR [--images N] [--prompts N] [--threads T] [--repeat R] [--json]",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			var o benchOptions
			fs.StringVar(&o.model, "model", "", "model `DIR` (a synthetic checkpoint from nextchat gen will do)")
			fs.IntVar(&o.threads, "threads", 0, "CPU compute threads; 0 = one per hardware thread")
			fs.IntVar(&o.images, "images", 4, "vision: images per timed run, encoded in one call")
			fs.IntVar(&o.prompts, "prompts", 8, "sam: locations per mask-decoder call")
			fs.BoolVar(&o.samEncoder, "encoder", true, "sam: time the image encoder too (false: the mask decoder alone, on a random embedding)")
			fs.IntVar(&o.tokens, "prompt-tokens", 128, "llm: prefill length")
			fs.IntVar(&o.steps, "steps", 8, "llm: decode steps per timed run")
			fs.IntSliceVar(&o.batches, "batches", []int{1, 4, 16}, "llm: decode batch sizes")
			fs.StringVar(&o.kvDType, "kv-dtype", "bf16", "llm: KV cache dtype: bf16, f16 or f32 (run and ground default to f16)")
			fs.Float32Var(&o.temperature, "temperature", 0, "llm: decode by sampling at this temperature (0 = greedy), one seed per sequence")
			fs.IntVar(&o.topK, "top-k", 0, "llm: with --temperature, sample among the k most likely tokens (0 = all)")
			fs.Float32Var(&o.topP, "top-p", 1, "llm: with --temperature, sample within this probability mass")
			fs.IntVar(&o.prefillChunk, "prefill-chunk", 0, "chat: prompt rows per step while other requests step (0 = the engine's 128, -1 = whole prompts)")
			var weights llmWeightsFlags
			weights.register(fs, "llm, chat, serve: ")
			fs.IntVar(&o.repeat, "repeat", 3, "timed runs after one warm-up; the fastest is reported")
			fs.Float64Var(&o.probeSeconds, "probe-seconds", 2, "how long to measure the FMA peak")
			asJSON := fs.Bool("json", false, "print a machine-readable report")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usageError("bench needs one benchmark name\n%s", known)
				}
				i := slices.IndexFunc(benchmarks(), func(b benchmark) bool { return b.name == args[0] })
				if i < 0 {
					return usageError("unknown benchmark %q\n%s", args[0], known)
				}
				if o.model == "" || o.images < 1 || o.prompts < 1 || o.repeat < 1 || o.threads < 0 || o.probeSeconds <= 0 {
					return usageError("bench needs --model DIR, --images ≥ 1, --prompts ≥ 1, --repeat ≥ 1, --threads ≥ 0, --probe-seconds > 0")
				}
				held, err := weights.value()
				if err != nil {
					return err
				}
				if held != bindings.LLMWeightsAsStored && !slices.Contains([]string{"llm", "chat", "serve"}, args[0]) {
					return usageError("--llm-weights and --compact-weights apply to the llm, chat and serve benchmarks")
				}
				o.weights = held
				r, err := benchmarks()[i].run(ctx, o)
				if err != nil {
					return err
				}
				if o.weights != bindings.LLMWeightsAsStored {
					r.LLMWeights = o.weights.String()
					for i := range r.Stages {
						r.Stages[i].LLMWeights = r.LLMWeights
					}
				}
				return printReport(e.stdout, *asJSON, r, func() error { return writeBench(e.stdout, r) })
			}
		},
	}
}

// llmWeightsNote says what a report's llm_weights means beside its name.
var llmWeightsNote = map[string]string{
	"compact": "bf16 in 12 bits per weight, losslessly",
	"int8":    "8 bits per weight and a scale per row: lossy",
}

// openBenchModel loads a model directory with the benchmark's thread count.
func openBenchModel(o benchOptions) (*modeldir.Dir, *bindings.Model, error) {
	d, err := modeldir.Open(o.model)
	if err != nil {
		return nil, nil, err
	}
	m, err := bindings.OpenModel(bindings.ModelParams{Config: d.Config, Files: d.Files, Tensors: d.Refs(),
		Backend: bindings.CPU, Threads: o.threads, LLMWeights: o.weights})
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", d.Path, err)
	}
	return d, m, nil
}

// timeRuns runs one untimed warm-up (it also faults the memory-mapped weights in), then repeat timed runs.
func timeRuns(ctx context.Context, repeat int, run func() error) ([]float64, error) {
	return timeRunsAfter(ctx, repeat, func() error { return nil }, run)
}

// timeRunsAfter runs setup (untimed) then run, once as a warm-up and repeat times timed.
func timeRunsAfter(ctx context.Context, repeat int, setup, run func() error) ([]float64, error) {
	var seconds []float64
	for i := 0; i <= repeat; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := setup(); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := run(); err != nil {
			return nil, err
		}
		if i > 0 {
			seconds = append(seconds, time.Since(start).Seconds())
		}
	}
	return seconds, nil
}

// finish fills the rates of a report from its runs, work and the FMA peak measured now with the same threads.
func finish(r benchReport, o benchOptions) (benchReport, error) {
	peak, err := bindings.FMAPeak(o.threads, time.Duration(o.probeSeconds*float64(time.Second)))
	if err != nil {
		return r, err
	}
	r.Threads = o.threads
	if r.Threads == 0 {
		r.Threads = runtime.NumCPU()
	}
	r.ItemsPerSecond = float64(r.ItemsPerRun) / slices.Min(r.RunSeconds)
	r.GFLOPS = r.ItemsPerSecond * r.FLOPPerItem / 1e9
	r.FMAPeakGFLOPS = peak
	r.PercentOfPeak = 100 * r.GFLOPS / peak
	amx, err := bindings.AMXPeak(o.threads, time.Duration(o.probeSeconds*float64(time.Second)))
	if err != nil {
		return r, err
	}
	if amx > 0 {
		r.AMXPeakGFLOPS = amx
		r.PercentOfAMXExact = 100 * r.GFLOPS / (amx / 3)
	}
	r.Date = time.Now().UTC().Format(time.RFC3339)
	return r, nil
}

// visionFLOP is the matrix-product work of one image through CLIP and the projector: the patch embedding, the
// layers that run (q, k, v, out, fc1, fc2 over T = P + 1 tokens; q·kᵀ and p·v) and the projector over P rows.
func visionFLOP(d bindings.ModelDims, intermediate int) float64 {
	P, D, I, H := float64(d.ImageTokens), float64(d.VisionHiddenSize), float64(intermediate), float64(d.HiddenSize)
	T, patch := P+1, float64(3*d.PatchSize*d.PatchSize)
	layer := 2*T*D*D*4 + 2*T*D*I*2 + 2*T*T*D*2
	return 2*P*patch*D + float64(d.VisionLayers)*layer + 2*P*D*H + 2*P*H*H
}

func benchVision(ctx context.Context, o benchOptions) (benchReport, error) {
	dir, m, err := openBenchModel(o)
	if err != nil {
		return benchReport{}, err
	}
	defer m.Close()
	d, err := m.Dims()
	if err != nil {
		return benchReport{}, err
	}
	// Pixels spread over the range CLIP normalization produces (§1.4: about [-1.8, 2.2]).
	rng := rand.New(rand.NewPCG(1, 2))
	pixels := make([]float32, o.images*3*d.ImageSize*d.ImageSize)
	for i := range pixels {
		pixels[i] = float32(rng.Float64()*4 - 1.8)
	}
	seconds, err := timeRuns(ctx, o.repeat, func() error {
		_, _, err := m.EncodeImages(pixels, o.images)
		return err
	})
	if err != nil {
		return benchReport{}, err
	}
	return finish(benchReport{
		Benchmark: "vision", Model: dir.Path, Synthetic: dir.Headers[0].Metadata["nextchat.synthetic"] != "",
		Unit: "image", ItemsPerRun: o.images, RunSeconds: seconds,
		FLOPPerItem: visionFLOP(d, dir.Config.Vision.IntermediateSize),
		Shape: map[string]int{"image_size": d.ImageSize, "patch_size": d.PatchSize, "image_tokens": d.ImageTokens,
			"vision_hidden_size": d.VisionHiddenSize, "vision_intermediate_size": dir.Config.Vision.IntermediateSize,
			"vision_layers": d.VisionLayers, "hidden_size": d.HiddenSize},
	}, o)
}

func writeBench(w io.Writer, r benchReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "benchmark\t%s\n", r.Benchmark)
	weights := ""
	if r.Synthetic {
		weights = " (synthetic weights)"
	}
	fmt.Fprintf(tw, "model\t%s%s\n", r.Model, weights)
	keys := make([]string, 0, len(r.Shape))
	for k := range r.Shape {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var shape []string
	for _, k := range keys {
		shape = append(shape, fmt.Sprintf("%s=%d", k, r.Shape[k]))
	}
	fmt.Fprintf(tw, "shape\t%s\n", strings.Join(shape, " "))
	fmt.Fprintf(tw, "threads\t%d\n", r.Threads)
	if r.KVDType != "" {
		fmt.Fprintf(tw, "kv cache\t%s\n", r.KVDType)
	}
	if r.Sampling != "" {
		fmt.Fprintf(tw, "sampling\t%s\n", r.Sampling)
	}
	if r.LLMWeights != "" {
		fmt.Fprintf(tw, "llm weights\t%s (%s)\n", r.LLMWeights, llmWeightsNote[r.LLMWeights])
	}
	if r.LongestGapSeconds > 0 {
		fmt.Fprintf(tw, "streaming\t%.3f s longest gap between the deltas of the answer streaming meanwhile\n", r.LongestGapSeconds)
	}
	if r.FirstTokenSeconds > 0 {
		fmt.Fprintf(tw, "first token\t%.3f s mean time to a client's first text delta\n", r.FirstTokenSeconds)
	}
	if r.MeanBatch > 0 {
		fmt.Fprintf(tw, "batching\t%.2f sequences per step on average\n", r.MeanBatch)
	}
	runs := make([]string, len(r.RunSeconds))
	for i, s := range r.RunSeconds {
		runs[i] = fmt.Sprintf("%.3f", s)
	}
	fmt.Fprintf(tw, "runs\t%d %ss each: %s s\n", r.ItemsPerRun, r.Unit, strings.Join(runs, ", "))
	fmt.Fprintf(tw, "throughput\t%.3f %ss/s (fastest run), %.3f s per %s\n", r.ItemsPerSecond, r.Unit, 1/r.ItemsPerSecond, r.Unit)
	fmt.Fprintf(tw, "work\t%.2f GFLOP per %s (matrix products)\n", r.FLOPPerItem/1e9, r.Unit)
	fmt.Fprintf(tw, "achieved\t%.1f GFLOP/s = %.1f%% of the FMA peak (%.1f GFLOP/s measured now, %d threads)\n",
		r.GFLOPS, r.PercentOfPeak, r.FMAPeakGFLOPS, r.Threads)
	if r.AMXPeakGFLOPS > 0 {
		fmt.Fprintf(tw, "tiles\tAMX peak %.0f GFLOP/s in bf16 now; float32-exact products (a third) %.0f: this is %.1f%% of it\n",
			r.AMXPeakGFLOPS, r.AMXPeakGFLOPS/3, r.PercentOfAMXExact)
	}
	if r.GBPerSecond > 0 {
		fmt.Fprintf(tw, "memory\t%.1f GB/s read = %.1f%% of the read bandwidth (%.1f GB/s measured now)\n",
			r.GBPerSecond, r.PercentOfBandwidth, r.ReadBandwidthGBps)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Stages {
		fmt.Fprintln(w)
		if err := writeBench(w, s); err != nil {
			return err
		}
	}
	return nil
}
