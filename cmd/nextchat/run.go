package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/answer"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/prompt"
)

// runFlags are the options of `nextchat run`.
type runFlags struct {
	answerFlags
	outImage      string
	prefix, dump  string
	beams         int
	lengthPenalty float64
	asJSON        bool
}

// answerFlags are the options `run` and `chat` share: the model and its plan, the image and regions, decoding, SAM.
type answerFlags struct {
	model, kvDType, image         string
	boxes                         []string
	threads, context, maxNew      int
	topK                          int
	temperature, topP, repPenalty float32
	seed                          uint64
	stop                          []string
	noMask                        bool
	weights                       llmWeightsFlags
	iouThreshold                  float64
}

func (f *answerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.model, "model", "", "model directory")
	fs.StringVar(&f.image, "image", "", "image to ask about (JPEG, PNG, GIF, WebP, BMP)")
	fs.StringArrayVar(&f.boxes, "box", nil, "a region x1,y1,x2,y2 in image pixels, referred to as [0], [1], ... in questions (repeatable)")
	fs.BoolVar(&f.noMask, "no-mask", false, "skip SAM: boxes only")
	fs.Float64Var(&f.iouThreshold, "iou-threshold", answer.DefaultIoUThreshold, "drop masks whose predicted IoU is below this (NExT-Chat's demo: 0.3; 0 keeps all)")
	fs.IntVar(&f.maxNew, "max-new-tokens", 512, "most tokens to generate")
	fs.Float32Var(&f.temperature, "temperature", 0, "sampling temperature; 0 = greedy (docs/SAMPLING.md)")
	fs.IntVar(&f.topK, "top-k", 0, "sample among the k most likely tokens (0 = all)")
	fs.Float32Var(&f.topP, "top-p", 1, "sample within this probability mass")
	fs.Float32Var(&f.repPenalty, "repetition-penalty", 1, "HF repetition penalty (1 = none)")
	fs.Uint64Var(&f.seed, "seed", 0, "sampling seed")
	fs.StringArrayVar(&f.stop, "stop", nil, "stop when the answer contains this text (repeatable)")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (0 = all)")
	fs.StringVar(&f.kvDType, "kv-dtype", "f16", "KV cache dtype: f16, bf16 or f32")
	fs.IntVar(&f.context, "ctx", 0, "positions per sequence, prompt and answer: the memory plan's context (0 = the model's maximum)")
	f.weights.register(fs, "")
}

// open opens the engine for sequences at once (one image per command).
func (f answerFlags) open(sequences int) (*engine.Engine, error) {
	kv, err := bindings.ParseDType(f.kvDType)
	if err != nil {
		return nil, usageError("%v", err)
	}
	weights, err := f.weights.value()
	if err != nil {
		return nil, err
	}
	o := engine.DefaultOptions()
	o.Threads, o.KVDType, o.ContextTokens, o.LLMWeights = f.threads, kv, f.context, weights
	o.MaxSequences = sequences
	o.FeatureCacheImages, o.SAMCacheImages = 1, 1
	return engine.Open(f.model, o)
}

// inputs are the image (nil without --image) and the regions (pixels).
func (f answerFlags) inputs() (*imageproc.RGB, [][4]float64, error) {
	boxes, err := parseBoxes(f.boxes)
	if err != nil {
		return nil, nil, usageError("%v", err)
	}
	if f.image == "" {
		return nil, boxes, nil
	}
	img, err := decodeImageFile(f.image)
	return img, boxes, err
}

func (f answerFlags) generation() engine.GenParams {
	return engine.GenParams{MaxNewTokens: f.maxNew, Stop: f.stop, Sampling: bindings.Sampling{
		Temperature: f.temperature, TopK: f.topK, TopP: f.topP, RepetitionPenalty: f.repPenalty, Seed: f.seed}}
}

func runCommand() command {
	return command{
		name:    "run",
		summary: "answer a question (streaming), with [k] markers for each location the model outputs",
		usage:   "--model DIR [flags] \"question\"",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			var f runFlags
			f.register(fs)
			fs.StringVar(&f.outImage, "out-image", "", "write the image annotated with the answer's boxes and masks (PNG)")
			fs.StringVar(&f.prefix, "prefix", "", "continue the assistant's answer from this text (e.g. \"Answer: <at>\")")
			fs.IntVar(&f.beams, "beams", 1, "beam search width (1 = no beam search)")
			fs.Float64Var(&f.lengthPenalty, "length-penalty", 1, "beam score = log p / length^penalty")
			fs.BoolVar(&f.asJSON, "json", false, "print one JSON result instead of streaming text")
			fs.StringVar(&f.dump, "dump", "", "write the stage tensors (golden names) to this safetensors file")
			fs.IntVar(&f.context, "context", 0, "")
			_ = fs.MarkDeprecated("context", "use --ctx")
			return func(ctx context.Context, e *env, args []string) error {
				if f.model == "" || len(args) != 1 {
					return usageError("run needs --model DIR and one question")
				}
				return runAnswer(ctx, e, f, args[0])
			}
		},
	}
}

func runAnswer(ctx context.Context, e *env, f runFlags, question string) error {
	img, boxes, err := f.inputs()
	if err != nil {
		return err
	}
	if img == nil && f.outImage != "" {
		return usageError("--out-image needs --image")
	}
	eng, err := f.open(f.beams) // every beam is a sequence
	if err != nil {
		return err
	}
	defer eng.Close()
	req := engine.Request{Turns: []prompt.Turn{{Role: prompt.User, Text: question}}, AnswerPrefix: f.prefix,
		Image: img, Boxes: boxes}
	prep, err := eng.Prepare(req)
	if err != nil {
		return err
	}
	gen := f.generation()
	var res engine.Result
	if f.beams > 1 {
		res, err = eng.RunBeams(ctx, prep, gen, engine.BeamParams{Beams: f.beams, LengthPenalty: f.lengthPenalty})
		if err == nil && !f.asJSON {
			fmt.Fprint(e.stdout, engine.MarkLocations(res.Text))
		}
	} else {
		var stream func(string) error
		finish := func() error { return nil }
		if !f.asJSON {
			stream, finish = engine.MarkingStream(func(s string) error { _, err := io.WriteString(e.stdout, s); return err })
		}
		res, err = eng.Run(ctx, prep, gen, stream)
		if err == nil {
			err = finish()
		}
	}
	if err != nil {
		return err
	}
	if f.dump != "" {
		if err := dumpStages(f.dump, eng, req.Image, prep, res); err != nil {
			return err
		}
	}
	locs, err := answer.Locations(res, req.Image)
	if err != nil {
		return err
	}
	if req.Image != nil && !f.noMask {
		if err := answer.AddMasks(eng, req.Image, res.Locations, locs, f.iouThreshold); err != nil {
			return err
		}
	}
	if f.outImage != "" {
		if err := writeAnnotated(f.outImage, req.Image, locs); err != nil {
			return err
		}
	}
	if f.asJSON {
		return writeRunJSON(e.stdout, res, locs)
	}
	fmt.Fprintln(e.stdout)
	printLocations(e.stdout, locs)
	return nil
}

// printLocations lists an answer's locations, one line each: the box in pixels (normalized without an image) and
// the mask's IoU and area.
func printLocations(w io.Writer, locs []answer.Location) {
	for _, l := range locs {
		if l.BoxPixel != nil {
			fmt.Fprintf(w, "[%d] box (pixels) %.1f, %.1f, %.1f, %.1f", l.Index, l.BoxPixel[0], l.BoxPixel[1], l.BoxPixel[2], l.BoxPixel[3])
			if l.IoU != nil {
				fmt.Fprintf(w, "  IoU %.3f  mask %d px", *l.IoU, l.MaskArea)
				if l.Mask == nil {
					fmt.Fprint(w, " (dropped: IoU below threshold)")
				}
			}
			fmt.Fprintln(w)
		} else {
			fmt.Fprintf(w, "[%d] box (normalized xyxy) %s\n", l.Index, formatBox(l.Box))
		}
	}
}

func formatBox(b [4]float32) string {
	return fmt.Sprintf("%.4f, %.4f, %.4f, %.4f", b[0], b[1], b[2], b[3])
}

// runJSON is the machine-readable result of `run --json`.
type runJSON struct {
	Answer    string            `json:"answer"` // with [k] markers
	Text      string            `json:"text"`   // raw, with <at> <boxes>
	Tokens    []int32           `json:"tokens"`
	Finish    string            `json:"finish_reason"`
	Locations []answer.Location `json:"locations"`
}

func writeRunJSON(w io.Writer, res engine.Result, locs []answer.Location) error {
	out := runJSON{Answer: engine.MarkLocations(res.Text), Text: res.Text, Tokens: res.Tokens, Finish: res.Finish,
		Locations: locs}
	return printJSON(w, out)
}
