package main

import (
	"context"
	"fmt"
	"github.com/nextchat/nextchat/internal/answer"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/engine"
)

// groundJSON is one expression's result of `nextchat ground --json`.
type groundJSON struct {
	Expression string `json:"expression"`
	answer.Location
}

func groundCommand() command {
	return command{
		name:    "ground",
		summary: "locate referring expressions in an image (NExT-Chat's REC path: the shared prompt prefilled once, no sampling)",
		usage:   "--model DIR --image FILE [--json] \"expression\" [\"expression\" ...]",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			model := fs.String("model", "", "model directory")
			image := fs.String("image", "", "image file")
			asJSON := fs.Bool("json", false, "print JSON")
			threads := fs.Int("threads", 0, "CPU threads (0 = all)")
			outImage := fs.String("out-image", "", "write the image annotated with the boxes (PNG)")
			withMask := fs.Bool("mask", false, "also segment each expression with SAM (masks as COCO RLE in --json)")
			iouThreshold := fs.Float64("iou-threshold", 0, "drop masks whose predicted IoU is below this (0 keeps all)")
			ctxTokens := fs.Int("ctx", 0, "positions per expression's sequence: the memory plan's context (0 = the longest expression's prompt)")
			var weights llmWeightsFlags
			weights.register(fs, "")
			reportRSS := fs.Bool("report-rss", false, "print the process's peak resident memory and the memory plan's host total to stderr at the end")
			return func(ctx context.Context, e *env, args []string) error {
				if *model == "" || *image == "" || len(args) == 0 {
					return usageError("ground needs --model DIR, --image FILE and at least one expression")
				}
				held, err := weights.value()
				if err != nil {
					return err
				}
				img, err := decodeImageFile(*image)
				if err != nil {
					return err
				}
				need, err := engine.PlanGrounding(*model, args)
				if err != nil {
					return err
				}
				o := engine.DefaultOptions()
				o.Threads, o.KVDType, o.ContextTokens, o.LLMWeights = *threads, bindings.F16, *ctxTokens, held
				if o.ContextTokens == 0 {
					o.ContextTokens = need.Context
				}
				o.MaxSequences, o.MaxStepRows = need.Sequences, need.StepRows
				o.FeatureCacheImages, o.SAMCacheImages = 1, 1 // one image per command
				eng, err := engine.Open(*model, o)
				if err != nil {
					return err
				}
				defer eng.Close()
				if *reportRSS {
					defer func() { reportPeakRSS(e.stderr, eng.Plan) }()
				}
				locs, err := eng.Ground(ctx, img, nil, args)
				if err != nil {
					return err
				}
				described, err := answer.Locations(engine.Result{Locations: locs}, img)
				if err != nil {
					return err
				}
				if *withMask {
					if err := answer.AddMasks(eng, img, locs, described, *iouThreshold); err != nil {
						return err
					}
				}
				if *outImage != "" {
					if err := writeAnnotated(*outImage, img, described); err != nil {
						return err
					}
				}
				if *asJSON {
					out := make([]groundJSON, len(args))
					for i := range args {
						out[i] = groundJSON{Expression: args[i], Location: described[i]}
					}
					return printJSON(e.stdout, out)
				}
				for i, l := range described {
					b := *l.BoxPixel
					fmt.Fprintf(e.stdout, "[%d] %q: box (pixels) %.1f, %.1f, %.1f, %.1f", i, args[i], b[0], b[1], b[2], b[3])
					if l.IoU != nil {
						fmt.Fprintf(e.stdout, "  IoU %.3f  mask %d px", *l.IoU, l.MaskArea)
					}
					fmt.Fprintln(e.stdout)
				}
				return nil
			}
		},
	}
}
