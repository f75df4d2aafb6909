// Command scraft runs multi-party state channels as Raft clusters: nodes,
// the embedded development settlement chain, and the tools around them.
package main

import (
	"github.com/scraft/scraft/protocol"

	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// rootCmd is the scraft command. Each subcommand lives in its own file and
// adds itself in an init function.
var rootCmd = &cobra.Command{
	Use:   "scraft",
	Short: "Multi-party state channels run as Raft clusters",
	Long: `scraft runs multi-party state channels. A channel is a group of members
that execute a WASM channel contract off-chain: the leader orders and
executes transactions, Raft replicates them, every member re-executes and
checks them, and a settlement chain decides who leads, settles state when
2/3 of the members agree, and punishes a cheating leader.

Flags can also be set with environment variables: SCRAFT_<FLAG>, with dashes
as underscores (for example SCRAFT_DATA=/var/lib/scraft).`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return applyEnv(cmd)
	}
	err := rootCmd.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "scraft:", describe(err))
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

// describe is an error as the CLI prints it: a node's answer already names
// its code; an error of this side that carries a client API code names it
// too, with the code's name, so scripts can match either.
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return err.Error()
	}
	if c := protocol.CodeOf(err); c != protocol.CodeOK && c != protocol.CodeInternal {
		return fmt.Sprintf("%v (%s, code %d)", err, c, c)
	}
	return err.Error()
}
