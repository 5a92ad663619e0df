package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/internal/convert"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/shards"
)

func convertCommand() command {
	return command{
		name:    "convert",
		summary: "turn the released checkpoint (pytorch_model-*.bin shards, or HF safetensors) into a model directory the engine loads",
		usage:   "--from DIR --to DIR [--dtype keep|bf16|f16] [--clip DIR]",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			from := fs.String("from", "", "the downloaded checkpoint (e.g. AoZhang/nextchat-7b-336): config.json, pytorch_model-*.bin with pytorch_model.bin.index.json, tokenizer files")
			to := fs.String("to", "", "output model directory (written beside it first, renamed into place once it loads)")
			dtype := fs.String("dtype", "keep", "weight dtype: keep (bit-identical), bf16 or f16 (round to nearest even; overflow is an error)")
			clip := fs.String("clip", "", "take the CLIP vision tower from this openai/clip-vit-large-patch14-336 directory instead of the checkpoint's copy")
			tokenizer := fs.String("tokenizer", "", "tokenizer.model to use (default: the one in --from)")
			shardBytes := fs.Int64("shard-bytes", shards.DefaultBytes, "largest weight file before sharding")
			keepUnused := fs.Bool("keep-unused", false, "keep the tensors the engine never reads (CLIP's last layer and post_layernorm, SAM's mask input branch, ...)")
			force := fs.Bool("force", false, "replace a model already at --to")
			asJSON := fs.Bool("json", false, "print the report as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				if *from == "" || *to == "" || len(args) > 0 {
					return usageError("convert needs --from DIR and --to DIR and no arguments")
				}
				target, err := outputDType(*dtype)
				if err != nil {
					return usageError("%v", err)
				}
				rep, err := convert.Convert(ctx, convert.Options{
					From: *from, To: *to, CLIP: *clip, Tokenizer: *tokenizer, DType: target, ShardBytes: *shardBytes,
					KeepUnused: *keepUnused, Force: *force, Progress: e.stderr,
				})
				if err != nil {
					return err
				}
				if *asJSON {
					return printJSON(e.stdout, rep)
				}
				writeConvertReport(e.stdout, rep, fs.Lookup("verbose").Value.String() == "true")
				return nil
			}
		},
	}
}

func outputDType(s string) (safetensors.DType, error) {
	switch strings.ToLower(s) {
	case "keep":
		return "", nil
	case "bf16":
		return safetensors.BF16, nil
	case "f16", "fp16":
		return safetensors.F16, nil
	}
	return "", fmt.Errorf("unknown --dtype %q: keep, bf16 or f16", s)
}

// dropReasons explain each kind of dropped tensor, in the order they are listed.
var dropReasons = []struct{ reason, why string }{
	{convert.DropUnused, "never read by the engine (MODEL_SPEC §7.2; --keep-unused keeps them)"},
	{convert.DropBuffer, "buffers the engine recomputes (rotary inv_freq, CLIP position_ids, SAM pixel_mean/std)"},
	{convert.DropReplaced, "the checkpoint's CLIP copy, replaced by --clip"},
	{convert.DropUnknown, "not NExT-Chat tensors (check the checkpoint is the one you meant)"},
}

func writeConvertReport(w io.Writer, r convert.Report, verbose bool) {
	rate := 0.0
	if r.Seconds > 0 {
		rate = float64(r.Bytes) / r.Seconds
	}
	fmt.Fprintf(w, "converted  %s (%s, %d file(s), %s) → %s in %.1f s (%s/s)\n", r.From, r.Format, r.InputFiles,
		progress.FormatBytes(r.InputBytes), r.To, r.Seconds, progress.FormatBytes(int64(rate)))
	var dtypes []string
	for _, d := range []string{"BF16", "F16", "F32"} {
		if n := r.TensorsByDType[d]; n > 0 {
			dtypes = append(dtypes, fmt.Sprintf("%s %d", d, n))
		}
	}
	fmt.Fprintf(w, "kept       %d tensors, %s parameters, %s in %d file(s), %s\n", r.Tensors, groupDigits(r.Params),
		progress.FormatBytes(r.Bytes), len(r.Files), strings.Join(dtypes, ", "))
	if r.Converted > 0 {
		fmt.Fprintf(w, "dtype      %d tensors converted (round to nearest even), %d values flushed to zero\n", r.Converted, r.FlushedToZero)
	}
	for _, d := range dropReasons {
		if n, bytes := r.DroppedCount(d.reason); n > 0 {
			fmt.Fprintf(w, "dropped    %d tensors (%s): %s\n", n, progress.FormatBytes(bytes), d.why)
		}
	}
	clip := "the checkpoint's own copy"
	if r.CLIPFrom != "checkpoint" {
		clip = r.CLIPFrom
	}
	fmt.Fprintf(w, "clip       from %s\n", clip)
	fmt.Fprintf(w, "copied     config.json (our schema, the release's fields kept), %s\n", strings.Join(r.Copied, ", "))
	fmt.Fprintf(w, "checked    every tensor against the spec; the engine loads %s\n", r.To)
	if verbose {
		for _, d := range r.Dropped {
			fmt.Fprintf(w, "dropped: %s (%s)\n", d.Name, d.Reason)
		}
	} else if len(r.Dropped) > 0 {
		fmt.Fprintln(w, "(-v lists the dropped tensors)")
	}
}
