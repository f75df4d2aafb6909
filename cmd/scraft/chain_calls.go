package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// chainChannelCallCmd is a subcommand that sends one call naming a channel.
func chainChannelCallCmd(use, short string, call func(ctx context.Context, c *devchain.Client, id protocol.ChannelID) error) *cobra.Command {
	var cc chainClient
	cmd := &cobra.Command{
		Use:   use + " CHANNEL",
		Short: short,
		Args:  cc.channelArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = cc.withChannel(args)
			id, err := protocol.ParseChannelID(args[0])
			if err != nil {
				return err
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error { return call(ctx, c, id) })
		},
	}
	cc.flags(cmd)
	cc.channelFlag(cmd)
	return cmd
}

func chainLeaveCmd() *cobra.Command {
	return chainChannelCallCmd("leave", "Ask to leave a channel (the stake is released by the next settlement)",
		func(ctx context.Context, c *devchain.Client, id protocol.ChannelID) error { return c.Leave(ctx, id) })
}

func chainKeepAliveCmd() *cobra.Command {
	return chainChannelCallCmd("keep-alive", "Send one heartbeat (valid for the chain's heartbeat TTL, 15 s by default)",
		func(ctx context.Context, c *devchain.Client, id protocol.ChannelID) error {
			return c.KeepAlive(ctx, id)
		})
}

func chainCloseCmd() *cobra.Command {
	return chainChannelCallCmd("close", "Close a channel (creator or member)",
		func(ctx context.Context, c *devchain.Client, id protocol.ChannelID) error {
			return c.CloseChannel(ctx, id)
		})
}

func chainVoteCmd() *cobra.Command {
	var cc chainClient
	cmd := &cobra.Command{
		Use:   "vote CHANNEL PROPOSAL for|against|abstain",
		Short: "Vote on a proposal",
		Args:  cc.channelArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = cc.withChannel(args)
			id, err := protocol.ParseChannelID(args[0])
			if err != nil {
				return err
			}
			pid, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("proposal %q: %w", args[1], err)
			}
			var opt protocol.VoteOption
			switch args[2] {
			case "for", "1":
				opt = protocol.VoteFor
			case "against", "0":
				opt = protocol.VoteAgainst
			case "abstain", "2":
				opt = protocol.VoteAbstain
			default:
				return fmt.Errorf("vote %q: want for, against or abstain", args[2])
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error { return c.Vote(ctx, id, pid, opt) })
		},
	}
	cc.flags(cmd)
	cc.channelFlag(cmd)
	return cmd
}

func chainExecuteCmd() *cobra.Command {
	var cc chainClient
	cmd := &cobra.Command{
		Use:   "execute CHANNEL PROPOSAL",
		Short: "Execute a passed proposal",
		Args:  cc.channelArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = cc.withChannel(args)
			id, err := protocol.ParseChannelID(args[0])
			if err != nil {
				return err
			}
			pid, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("proposal %q: %w", args[1], err)
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error { return c.ExecuteProposal(ctx, id, pid) })
		},
	}
	cc.flags(cmd)
	cc.channelFlag(cmd)
	return cmd
}

// channelABIFile returns the ABI create-channel records with the code:
// --abi FILE as written, checked in full and against the chain's bound,
// or else the demo contract's own (contr names one), or nil: a channel of
// a contract without an ABI on record is called with --abi FILE or
// --args-hex.
func channelABIFile(contr, abiFile string) ([]byte, error) {
	if abiFile == "" {
		if strings.HasSuffix(contr, ".wasm") || strings.ContainsRune(contr, os.PathSeparator) {
			return nil, nil
		}
		c, err := contracts.Get(contr)
		if err != nil {
			return nil, err
		}
		return json.Marshal(c.ABI)
	}
	raw, err := os.ReadFile(abiFile)
	if err != nil {
		return nil, fmt.Errorf("--abi: %w", err)
	}
	if len(raw) > contract.MaxABILen {
		return nil, fmt.Errorf("--abi %s: %d bytes; the chain records an ABI of at most %d", abiFile, len(raw), contract.MaxABILen)
	}
	if _, err := contracts.ParseABI(raw); err != nil {
		return nil, fmt.Errorf("--abi %s: %w", abiFile, err)
	}
	return raw, nil
}
