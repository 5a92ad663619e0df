package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/pflag"

	"github.com/nextchat/nextchat/bindings"
)

func versionCommand() command {
	return command{
		name:    "version",
		summary: "print versions and the compute backends compiled in",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			return func(_ context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usageError("version takes no arguments")
				}
				if err := bindings.CheckABI(); err != nil {
					return err
				}
				backends, err := bindings.Backends()
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "nextchat %s (C ABI %d, %s %s/%s)\n", bindings.Version(), bindings.ABIVersion(),
					runtime.Version(), runtime.GOOS, runtime.GOARCH)
				for _, b := range backends {
					state := "not compiled in"
					if b.Compiled {
						state = fmt.Sprintf("compiled in, %d device(s) usable", b.Devices)
					}
					fmt.Fprintf(e.stdout, "  backend %-5s %s\n", b.Backend, state)
				}
				return nil
			}
		},
	}
}
