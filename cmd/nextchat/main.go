// Command nextchat is the CLI of the nextchat engine: checkpoints, model inspection, GPUs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
)

// command is one subcommand: its flags are registered on fs, run gets the positional arguments.
type command struct {
	name    string
	summary string
	usage   string // after "nextchat NAME"
	setup   func(fs *pflag.FlagSet) func(ctx context.Context, env *env, args []string) error
}

// env is what a command writes to; tests substitute buffers.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// errUsage marks a wrong invocation: exit status 2 and the command's usage.
var errUsage = errors.New("usage")

func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func commands() []command {
	cmds := []command{benchCommand(), convertCommand(), versionCommand(), infoCommand(), gpusCommand(), genCommand(), tokenizeCommand(), detokenizeCommand(), runCommand(), groundCommand(), chatCommand(), serveCommand()}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

// llmWeightsFlags are --llm-weights MODE, which every command that loads the language model takes, and
// --compact-weights, its shorthand for --llm-weights compact.
type llmWeightsFlags struct {
	mode    string
	compact bool
}

// register adds both flags to fs; `prefix` leads their help (which benchmarks or modes take them).
func (f *llmWeightsFlags) register(fs *pflag.FlagSet, prefix string) {
	fs.StringVar(&f.mode, "llm-weights", "stored", prefix+"how to hold the language model's matrices: stored (as the "+
		"files hold them), compact (bf16 in 12 bits per weight, losslessly: 25% less memory, faster decoding at small "+
		"batches) or int8 (8 bits per weight with a scale per row: half of bf16's memory, faster still, but LOSSY: "+
		"answers can differ from the reference); compact and int8 re-code at load (docs/USAGE.md)")
	fs.BoolVar(&f.compact, "compact-weights", false, prefix+"the same as --llm-weights compact")
}

// value is the mode asked for; a usage error for an unknown mode or --compact-weights beside another one.
func (f llmWeightsFlags) value() (bindings.LLMWeights, error) {
	w, err := bindings.ParseLLMWeights(f.mode)
	if err != nil {
		return 0, usageError("--llm-weights: %v", err)
	}
	if f.compact {
		if w != bindings.LLMWeightsAsStored && w != bindings.LLMWeightsCompact {
			return 0, usageError("--compact-weights and --llm-weights %s ask for different weights", w)
		}
		w = bindings.LLMWeightsCompact
	}
	return w, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		writeRootUsage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
		fs.SetOutput(e.stderr)
		fs.SortFlags = false
		verbose := fs.BoolP("verbose", "v", false, "log debug details to stderr")
		body := c.setup(fs)
		fs.Usage = func() {
			fmt.Fprintf(e.stderr, "Usage: nextchat %s %s\n\n%s\n\nFlags:\n%s", c.name, c.usage, c.summary, fs.FlagUsages())
		}
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, pflag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(e.stderr, "nextchat %s: %v\n", c.name, err)
			return 2
		}
		level := slog.LevelWarn
		if *verbose {
			level = slog.LevelDebug
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})))
		if err := body(ctx, e, fs.Args()); err != nil {
			fmt.Fprintf(e.stderr, "nextchat %s: %v\n", c.name, err)
			if errors.Is(err, errUsage) {
				fs.Usage()
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(e.stderr, "nextchat: unknown command %q\n\n", args[0])
	writeRootUsage(e.stderr)
	return 2
}

// printJSON writes a command's --json result, indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeRootUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("nextchat — inference engine for NExT-Chat (boxes and masks from a multimodal LLM)\n\n")
	b.WriteString("Usage: nextchat COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'nextchat COMMAND --help' for a command's flags.\n")
	io.WriteString(w, b.String())
}
