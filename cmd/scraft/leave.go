package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

func init() {
	rootCmd.AddCommand(leaveCmd())
}

func leaveCmd() *cobra.Command {
	var (
		api     apiClient
		onChain bool
	)
	cmd := &cobra.Command{
		Use:   "leave --node ADDR[,ADDR] --key FILE --channel ID [--chain ADDR --on-chain]",
		Short: "Take the key's member out of a channel",
		Long: `Take the member of --key out of the channel. The command signs a
scraft::leave call (the member's own request, verified by every member);
the channel settles past it, the leader orders the leave (the contract's
on_leave runs) and, if the key runs a node, takes that node out of the
channel's Raft group. Prints "left" once all that is done.

With --on-chain the command first asks the settlement chain, with the same key,
to let the member leave, so that the settlement releases its stake. A node's
key needs no --on-chain: the node asks the chain itself. The channel refuses to
lose its only member, or the quorum of its nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return api.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
				if onChain {
					if err := chainLeave(ctx, &api, ch); err != nil {
						return err
					}
				}
				if err := c.Leave(ctx, ch); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "left")
				return nil
			})
		},
	}
	api.flags(cmd)
	cmd.Flags().BoolVar(&onChain, "on-chain", false, "ask the chain (--chain) to let the member leave too, so its stake is released")
	return cmd
}

// chainLeave asks the chain, with the key of api, to let its member leave
// channel ch: in an open channel the next settlement releases the stake,
// in a closed one the chain releases it at once.
func chainLeave(ctx context.Context, api *apiClient, ch protocol.ChannelID) error {
	key, err := protocol.LoadKey(api.keyFile)
	if err != nil {
		return err
	}
	cl, err := api.dialChain(key)
	if err != nil {
		return fmt.Errorf("chain %s: %w", api.chainAddr, err)
	}
	defer cl.Close()
	if err := cl.Leave(ctx, ch); err != nil && !errors.Is(err, contract.ErrLeaving) && !errors.Is(err, contract.ErrNotMember) {
		return fmt.Errorf("leave on chain: %w", err)
	}
	return nil
}
