package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/internal/gpu"
)

func gpusCommand() command {
	return command{
		name:    "gpus",
		summary: "list NVIDIA GPUs (NVML): memory, utilization, compute capability",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usageError("gpus takes no arguments")
				}
				inv, err := gpu.List(ctx)
				if errors.Is(err, gpu.ErrNoDriver) {
					// A machine without an NVIDIA driver is a normal place to run the CPU backend.
					fmt.Fprintf(e.stdout, "No NVIDIA GPU usable: %v. The CPU backend is available.\n", err)
					return nil
				}
				if err != nil {
					return err
				}
				return inv.WriteTable(e.stdout)
			}
		},
	}
}
