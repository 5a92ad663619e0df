package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/server"
)

// serveFlags are the options of `nextchat serve`.
type serveFlags struct {
	model, addr, kvDType, name, logFormat string
	apiKey                                string
	overcommit                            bool
	threads, context, sequences, stepRows int
	weights                               llmWeightsFlags
	prefixCache, maxWaiting, maxTokens    int
	maxBodyMiB                            int64
	iouThreshold                          float64
	grace                                 time.Duration
}

func serveCommand() command {
	return command{
		name:    "serve",
		summary: "serve the model over HTTP: OpenAI-compatible chat completions with boxes and masks, grounding, metrics",
		usage:   "--model DIR [--addr HOST:PORT] [flags]",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			var f serveFlags
			fs.StringVar(&f.model, "model", "", "model directory")
			fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0: any free port, printed)")
			fs.StringVar(&f.name, "served-model-name", "", "model id of /v1/models and requests (default: the directory's name)")
			fs.IntVar(&f.sequences, "max-sequences", 4, "sequences at once: concurrent answers, beams and grounded expressions (the memory plan)")
			fs.IntVar(&f.context, "ctx", 0, "positions per sequence, prompt and answer (0 = the model's maximum)")
			fs.IntVar(&f.stepRows, "max-step-rows", 0, "prompt rows of one step, all requests together (0 = --ctx: a whole prompt)")
			fs.IntVar(&f.prefixCache, "prefix-cache", 0, "finished sequences kept so that follow-up questions prefill only their new rows (0 = --max-sequences, negative = none)")
			fs.IntVar(&f.maxWaiting, "max-waiting", 0, "requests waiting for sequences before more are refused with 429 (0 = 4 × --max-sequences)")
			fs.IntVar(&f.maxTokens, "default-max-tokens", 512, "an answer's most new tokens when a request sets no max_tokens")
			fs.Int64Var(&f.maxBodyMiB, "max-body-mib", 32, "largest request body, inline images included (MiB)")
			fs.Float64Var(&f.iouThreshold, "iou-threshold", 0, "drop masks whose predicted IoU is below this unless a request says (0 = the demo's 0.3, negative = keep all)")
			fs.IntVar(&f.threads, "threads", 0, "CPU threads (0 = all)")
			f.weights.register(fs, "")
			fs.StringVar(&f.kvDType, "kv-dtype", "f16", "KV cache dtype: f16, bf16 or f32")
			fs.DurationVar(&f.grace, "shutdown-grace", 30*time.Second, "on SIGINT/SIGTERM, how long running requests may finish before they are cancelled")
			fs.BoolVar(&f.overcommit, "allow-overcommit", false, "serve even when the memory plan exceeds the machine's memory (weights paged from disk, or killed when the KV cache fills)")
			fs.StringVar(&f.logFormat, "log-format", "text", "request log format: text or json (on stderr)")
			fs.StringVar(&f.apiKey, "api-key", os.Getenv("NEXTCHAT_API_KEY"), "require \"Authorization: Bearer KEY\" on /v1/ requests (default $NEXTCHAT_API_KEY; the environment keeps it out of the process list)")
			return func(ctx context.Context, e *env, args []string) error {
				if f.model == "" || len(args) != 0 {
					return usageError("serve needs --model DIR and no arguments")
				}
				return serve(ctx, e, f, fs.Changed("verbose"))
			}
		},
	}
}

// serve runs the server until ctx ends, then stops accepting, lets running requests finish for the grace period
// and cancels the rest.
func serve(ctx context.Context, e *env, f serveFlags, verbose bool) error {
	if err := setServerLog(e, f.logFormat, verbose); err != nil {
		return err
	}
	kv, err := bindings.ParseDType(f.kvDType)
	if err != nil {
		return usageError("%v", err)
	}
	if f.sequences < 1 {
		return usageError("--max-sequences must be at least 1")
	}
	weights, err := f.weights.value()
	if err != nil {
		return err
	}
	o := engine.DefaultOptions()
	o.Threads, o.KVDType, o.ContextTokens, o.MaxSequences = f.threads, kv, f.context, f.sequences
	o.MaxStepRows, o.PrefixCache, o.LLMWeights = f.stepRows, f.prefixCache, weights
	if o.MaxStepRows == 0 { // a whole prompt in one step; prompts arriving together are chunked (engine.Options)
		d, err := modeldir.Open(f.model)
		if err != nil {
			return err
		}
		o.MaxStepRows = cmp.Or(f.context, d.Config.MaxPositionEmbeddings)
	}
	eng, err := engine.Open(f.model, o)
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := fitsMemory(eng.Plan, f.overcommit, weights); err != nil {
		return err
	}
	srv := server.New(eng, server.Options{ModelName: f.name, MaxBodyBytes: f.maxBodyMiB << 20, MaxWaiting: f.maxWaiting,
		DefaultMaxTokens: f.maxTokens, IoUThreshold: f.iouThreshold, APIKey: f.apiKey})
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	// Requests' contexts derive from this one, so that what outlives the grace period is cancelled.
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Reading a request (an inline image at most --max-body-mib) is bounded; writing is not, since an answer streams
	// for as long as it generates.
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
		IdleTimeout: 2 * time.Minute, BaseContext: func(net.Listener) context.Context { return base }}
	held := "" // said only when not as stored, and int8's loss always
	switch weights {
	case bindings.LLMWeightsCompact:
		held = ", LLM weights compact"
	case bindings.LLMWeightsInt8:
		held = ", LLM weights int8 (lossy)"
	}
	fmt.Fprintf(e.stderr, "nextchat: serving %s on http://%s (context %d, %d sequences, KV %s%s, memory plan %.1f GiB); "+
		"API at /v1, web page at /\n", f.model, ln.Addr(), eng.Plan.Request.MaxContext, eng.Plan.Request.MaxSequences, kv,
		held, gibs(eng.Plan.HostBytes))
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	slog.Info("shutting down", "grace", f.grace)
	graceCtx, stop := context.WithTimeout(context.Background(), f.grace)
	defer stop()
	if err := hs.Shutdown(graceCtx); err != nil {
		slog.Warn("grace period over: cancelling running requests", "err", err)
		cancel()
		hs.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// fitsMemory refuses a plan larger than the machine's memory: the KV cache and workspaces are reserved but touched
// only as requests fill them, so such a server would start and be killed (or page its weights from disk) under load
// rather than now. With the LLM's weights as stored, the refusal names the smaller ways to hold them too.
func fitsMemory(p bindings.Plan, overcommit bool, weights bindings.LLMWeights) error {
	total, ok := physicalMemory()
	if !ok || p.HostBytes <= total {
		return nil
	}
	msg := fmt.Sprintf("the memory plan needs %.1f GiB (weights %.1f, KV cache %.1f, the rest %.1f) but this machine has %.1f GiB",
		gibs(p.HostBytes), gibs(p.WeightsTotal), gibs(p.KVBytes), gibs(p.HostBytes-p.WeightsTotal-p.KVBytes), gibs(total))
	if overcommit {
		slog.Warn(msg + ": serving anyway (--allow-overcommit)")
		return nil
	}
	shrink := "lower --ctx (positions per sequence) or --max-sequences"
	if weights == bindings.LLMWeightsAsStored {
		shrink += ", hold bf16 language-model weights in 12 bits with --llm-weights compact (lossless) or in 8 with " +
			"--llm-weights int8 (lossy)"
	}
	return fmt.Errorf("%s: %s, or pass --allow-overcommit", msg, shrink)
}

func gibs(b uint64) float64 { return float64(b) / (1 << 30) }

// physicalMemory is MemTotal of /proc/meminfo (false where there is none).
func physicalMemory() (uint64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kib uint64
			if _, err := fmt.Sscan(rest, &kib); err == nil {
				return kib << 10, true
			}
		}
	}
	return 0, false
}

// setServerLog logs requests at info level (debug with -v), as text or JSON.
func setServerLog(e *env, format string, verbose bool) error {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(e.stderr, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(e.stderr, opts)))
	default:
		return usageError("--log-format: want text or json, got %q", format)
	}
	return nil
}
