package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/tokenizer"
)

// loadTokenizer reads a model directory's tokenizer the way the engine does.
func loadTokenizer(model string) (*tokenizer.Tokenizer, error) {
	d, err := modeldir.Open(model)
	if err != nil {
		return nil, err
	}
	return tokenizer.Load(d.TokenizerPath)
}

func tokenizeCommand() command {
	return command{
		name:    "tokenize",
		summary: "show the token ids and pieces of a text, exactly as the engine tokenizes prompts",
		usage:   "--model DIR [--json] [--no-bos] TEXT",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			model := fs.String("model", "", "model directory")
			asJSON := fs.Bool("json", false, "print {\"ids\": [...], \"pieces\": [...]}")
			noBOS := fs.Bool("no-bos", false, "do not prepend <s>")
			return func(_ context.Context, e *env, args []string) error {
				if *model == "" || len(args) != 1 {
					return usageError("tokenize needs --model DIR and one TEXT argument")
				}
				tok, err := loadTokenizer(*model)
				if err != nil {
					return err
				}
				ids := tok.Encode(args[0], !*noBOS)
				pieces := make([]string, len(ids))
				for i, id := range ids {
					if pieces[i], err = tok.Piece(id); err != nil {
						return err
					}
				}
				if *asJSON {
					return json.NewEncoder(e.stdout).Encode(map[string]any{"ids": ids, "pieces": pieces})
				}
				for i, id := range ids {
					fmt.Fprintf(e.stdout, "%5d  %6d  %q\n", i, id, pieces[i])
				}
				return nil
			}
		},
	}
}

func detokenizeCommand() command {
	return command{
		name:    "detokenize",
		summary: "turn token ids back into text, as the engine decodes answers",
		usage:   "--model DIR [--keep-special] ID [ID ...]   (ids may also be comma-separated)",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			model := fs.String("model", "", "model directory")
			keep := fs.Bool("keep-special", false, "keep <s>, </s> and <unk> in the text")
			return func(_ context.Context, e *env, args []string) error {
				if *model == "" || len(args) == 0 {
					return usageError("detokenize needs --model DIR and at least one id")
				}
				var ids []int32
				for _, a := range args {
					for _, f := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' || r == '[' || r == ']' }) {
						v, err := strconv.ParseInt(f, 10, 32)
						if err != nil {
							return usageError("%q is not a token id", f)
						}
						ids = append(ids, int32(v))
					}
				}
				tok, err := loadTokenizer(*model)
				if err != nil {
					return err
				}
				text, err := tok.Decode(ids, !*keep)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, text)
				return nil
			}
		},
	}
}
