package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/devchain"
)

func init() {
	rootCmd.AddCommand(complainCmd())
}

// complaintView is what complain prints.
type complaintView struct {
	Proposal   uint64             `json:"proposal"`
	Channel    protocol.ChannelID `json:"channel"`
	Accused    protocol.Address   `json:"accused"`
	Tx         protocol.Hash      `json:"tx"`
	Nonce      uint64             `json:"nonce"`
	DeadlineMs int64              `json:"deadline_ms"`
}

func complainCmd() *cobra.Command {
	var (
		cc       chainClient
		channel  string
		txHex    string
		function string
		args     string
		argsHex  string
		nonce    uint64
		accused  string
	)
	cmd := &cobra.Command{
		Use:   "complain --key FILE --channel ID (--tx HEX | --function CONTRACT::NAME [--args JSON | --args-hex HEX] --nonce N) [--accused ADDR] [--chain ADDR]",
		Short: "File a censorship complaint against the channel's leader on the settlement chain",
		Long: `File a censorship complaint on the settlement chain: the member of --key
says the channel's leader does not order one of its signed txs. The tx is
--tx, the hex of a signed tx's encoding, or a new one the command signs
with --key from --function, --args (or --args-hex) and --nonce (the
member's next nonce in the channel): a member a leader shuts out can hand
it its tx this way, through the chain.

The complaint names the chain's current leader (or --accused, which the
chain refuses unless it is the leader). The leader must answer within the
channel's censorship window (its chain config; 30s by default) with a
batch it signed that holds the tx, or that shows the tx can never be
ordered: another tx of the member with the same nonce was, or the member
left. A node answers complaints against its own member by itself. Left
unanswered, anyone may execute the complaint once the window has passed
(scraft chain execute CHANNEL PROPOSAL): the channel closes at its last
settled state; no one is fined.

Prints the complaint as JSON: proposal id, accused, tx hash, nonce, and
the chain time (Unix ms) the answer is due by.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := protocol.ParseChannelID(channel)
			if err != nil {
				return err
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error {
				tx, err := complaintTx(c, id, txHex, function, args, argsHex, nonce)
				if err != nil {
					return err
				}
				v, err := fileComplaint(ctx, c, tx, accused)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), v)
			})
		},
	}
	cc.flags(cmd)
	cmd.Flags().StringVar(&channel, "channel", "", "channel id, 0x + 32 hex digits (required)")
	cmd.Flags().StringVar(&txHex, "tx", "", "the signed tx complained about, its encoding in hex")
	cmd.Flags().StringVar(&function, "function", "", "sign a new tx calling this function, contract::name (with --nonce)")
	cmd.Flags().StringVar(&args, "args", "", "the new tx's arguments as JSON, encoded with the demo contract's ABI")
	cmd.Flags().StringVar(&argsHex, "args-hex", "", "the new tx's arguments already encoded, in hex")
	cmd.Flags().Uint64Var(&nonce, "nonce", 0, "the new tx's nonce: the member's next in the channel")
	cmd.Flags().StringVar(&accused, "accused", "", "member address of the leader complained about (default: the chain's leader)")
	cmd.MarkFlagRequired("channel")
	cmd.MarkFlagRequired("key")
	cmd.Flags().SortFlags = false
	return cmd
}

// complaintTx returns the tx of --tx, or a new one signed with the chain
// client's key.
func complaintTx(c *devchain.Client, id protocol.ChannelID, txHex, function, args, argsHex string, nonce uint64) (*protocol.SignedTx, error) {
	switch {
	case txHex != "" && (function != "" || args != "" || argsHex != "" || nonce != 0):
		return nil, errors.New("complain: give --tx, or --function with --nonce, not both")
	case txHex != "":
		b, err := hex.DecodeString(strings.TrimPrefix(txHex, "0x"))
		if err != nil {
			return nil, fmt.Errorf("complain: --tx: %w", err)
		}
		tx, err := protocol.DecodeSignedTx(b)
		if err != nil {
			return nil, fmt.Errorf("complain: --tx: %w", err)
		}
		if tx.Tx.Channel != id {
			return nil, fmt.Errorf("complain: --tx is for channel %s, not %s", tx.Tx.Channel, id)
		}
		return tx, nil
	case function == "":
		return nil, errors.New("complain: give --tx, or --function with --nonce")
	case nonce == 0:
		return nil, errors.New("complain: --nonce is required with --function (the member's next nonce in the channel, from 1)")
	case args != "" && argsHex != "":
		return nil, errors.New("complain: give --args or --args-hex, not both")
	}
	enc, err := encodeCallArgs(function, args, argsHex)
	if err != nil {
		return nil, err
	}
	return protocol.SignTx(c.Key(), protocol.Tx{Channel: id, Nonce: nonce, Function: function, Args: enc,
		TimestampMs: uint64(time.Now().UnixMilli())}), nil
}

// fileComplaint files the complaint about tx against accused (default:
// the chain's leader) and reads back its deadline.
func fileComplaint(ctx context.Context, c *devchain.Client, tx *protocol.SignedTx, accused string) (*complaintView, error) {
	id := tx.Tx.Channel
	var who protocol.Address
	if accused != "" {
		a, err := protocol.ParseAddress(accused)
		if err != nil {
			return nil, fmt.Errorf("complain: --accused: %w", err)
		}
		who = a
	} else {
		info, err := c.Channel(ctx, id)
		if err != nil {
			return nil, err
		}
		if info.Leader.IsZero() {
			return nil, fmt.Errorf("complain: channel %s has no leader to complain about", id)
		}
		who = info.Leader
	}
	pid, err := c.CreateProposal(ctx, id, protocol.ProposalCensorship, protocol.Marshal(&protocol.Censorship{Accused: who, Tx: *tx}))
	if err != nil {
		return nil, err
	}
	v := &complaintView{Proposal: pid, Channel: id, Accused: who, Tx: tx.Hash(), Nonce: tx.Tx.Nonce}
	if p, err := c.Proposal(ctx, id, pid); err == nil {
		v.DeadlineMs = p.DeadlineMs
	}
	return v, nil
}
