package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/nextchat/nextchat/internal/answer"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/prompt"
)

// chatReset is the line that starts the conversation over.
const chatReset = "/reset"

func chatCommand() command {
	return command{
		name: "chat",
		summary: "a multi-turn conversation about an image: one question per line on stdin, answers streamed " +
			"with [k] markers; each turn prefills only its new rows",
		usage: "--model DIR [--image FILE] [--box x1,y1,x2,y2 ...] [flags] < questions",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			var f answerFlags
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if f.model == "" || len(args) != 0 {
					return usageError("chat needs --model DIR and reads its questions from stdin, one per line")
				}
				return chat(ctx, e, f)
			}
		},
	}
}

// chat answers the questions of e.stdin in one conversation. Each answer is followed by its locations (and masks)
// and a blank line; "/reset" forgets the conversation so far.
func chat(ctx context.Context, e *env, f answerFlags) error {
	img, boxes, err := f.inputs()
	if err != nil {
		return err
	}
	eng, err := f.open(1)
	if err != nil {
		return err
	}
	defer eng.Close()
	conv := eng.NewConversation(img, boxes)
	lines := bufio.NewScanner(e.stdin)
	lines.Buffer(make([]byte, 64*1024), 1<<20)
	for lines.Scan() {
		question := strings.TrimSpace(lines.Text())
		switch question {
		case "":
			continue
		case chatReset:
			conv.Reset()
			fmt.Fprintln(e.stdout, "(conversation reset)")
			continue
		}
		stream, finish := engine.MarkingStream(func(s string) error { _, err := io.WriteString(e.stdout, s); return err })
		res, err := conv.Ask(ctx, question, f.generation(), stream)
		if errors.Is(err, prompt.ErrBadPrompt) || errors.Is(err, bindings.ErrOverPlan) {
			// Refused before any compute: say why and go on with the conversation as it was.
			fmt.Fprintf(e.stderr, "error: %v\n", err)
			continue
		}
		if err == nil {
			err = finish()
		}
		if err != nil {
			return err
		}
		slog.Debug("turn", "cached_rows", res.CachedRows, "tokens", len(res.Tokens), "finish", res.Finish)
		fmt.Fprintln(e.stdout)
		locs, err := answer.Locations(res, img)
		if err != nil {
			return err
		}
		if img != nil && !f.noMask {
			if err := answer.AddMasks(eng, img, res.Locations, locs, f.iouThreshold); err != nil {
				return err
			}
		}
		printLocations(e.stdout, locs)
		fmt.Fprintln(e.stdout)
	}
	return lines.Err()
}
