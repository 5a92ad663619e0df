package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/shards"
	"github.com/nextchat/nextchat/internal/synth"
)

// defaultTokenizer is where the shared LLaMA tokenizer sits beside a checkout (DEVELOPERS.md).
const defaultTokenizer = "../shared/testdata/tokenizer/llama.model"

func genCommand() command {
	return command{
		name:    "gen",
		summary: "write a deterministic synthetic checkpoint (RANDOM weights, official tensor names) for tests and benchmarks",
		usage:   "--config tiny|small|7b|FILE.json --out DIR [--seed N] [--dtype bf16|f16|f32]",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			cfgName := fs.String("config", "tiny", "preset ("+strings.Join(synth.PresetNames(), ", ")+") or a config.json path")
			out := fs.String("out", "", "output directory")
			seed := fs.Uint64("seed", 0, "random seed; same seed, config and dtype give identical files")
			dtype := fs.String("dtype", "f32", "storage dtype: bf16, f16 or f32")
			tokenizer := fs.String("tokenizer", defaultTokenizer, "tokenizer.model to copy into the checkpoint")
			shard := fs.Int64("shard-bytes", shards.DefaultBytes, "largest weight file before sharding")
			force := fs.Bool("force", false, "overwrite a directory that already holds a model")
			return func(ctx context.Context, e *env, args []string) error {
				if *out == "" || len(args) > 0 {
					return usageError("gen needs --out DIR and no arguments")
				}
				cfg, err := synth.ResolveConfig(*cfgName)
				if err != nil {
					return err
				}
				dt, err := bindings.ParseDType(*dtype)
				if err != nil {
					return usageError("%v", err)
				}
				start := time.Now()
				res, err := synth.Generate(ctx, synth.Options{
					Config: cfg, Preset: filepath.Base(*cfgName), Seed: *seed, DType: dt, Out: *out,
					Tokenizer: *tokenizer, ShardBytes: *shard, Force: *force, Progress: e.stderr,
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "wrote %s: %s parameters, %s in %d file(s), %s, %.1f s\n", *out,
					groupDigits(res.Params), progress.FormatBytes(res.Bytes), len(res.Files), dt, time.Since(start).Seconds())
				fmt.Fprintln(e.stdout, "note: the weights are random (synthetic); answers from this model are meaningless.")
				return nil
			}
		},
	}
}
