package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

func init() {
	rootCmd.AddCommand(subscribeCmd())
}

func subscribeCmd() *cobra.Command {
	var (
		api     apiClient
		from    uint64
		count   uint64
		abiFile string
	)
	cmd := &cobra.Command{
		Use:   "subscribe --node ADDR[,ADDR] --key FILE --channel ID [--from HEIGHT] [--count N]",
		Short: "Print a channel's verified outcomes as JSON lines",
		Long: `Subscribe to a channel through a node's client API and print one JSON object
per line: first a snapshot of the state (with --from 0, or when the node
cannot replay from --from), then every verified outcome in height order.
If the node goes away the subscription resumes on the next --node after the
last height printed, with no gap and no repeat.

Resources and events are decoded ("value", "data") with --abi FILE, else
with the ABI the channel's creator recorded on chain (--chain), else with a
demo contract's by the type's prefix; the raw bytes are always printed too.

Runs until interrupted, or until --count outcomes are printed. --timeout
bounds only connecting.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			var abi *contracts.Contract
			if abiFile != "" {
				a, err := readABIFile(abiFile)
				if err != nil {
					return err
				}
				abi = &contracts.Contract{Name: a.Name, ABI: a}
			}
			dctx, cancel := context.WithTimeout(ctx, api.timeout)
			c, ch, err := api.dial(dctx)
			if err != nil {
				cancel()
				return err
			}
			defer c.Close()
			if abi == nil {
				abi, _ = api.channelABIFor(dctx, cmd.ErrOrStderr(), ch, "")
			}
			sub, err := c.Subscribe(dctx, ch, from)
			cancel()
			if err != nil {
				return err
			}
			defer sub.Close()
			return printUpdates(ctx, cmd.OutOrStdout(), sub, count, abi)
		},
	}
	api.flags(cmd)
	cmd.Flags().Uint64Var(&from, "from", 0, "print the outcomes after this height (0: a snapshot first)")
	cmd.Flags().Uint64Var(&count, "count", 0, "stop after this many outcomes (0: never)")
	cmd.Flags().StringVar(&abiFile, "abi", "", "the contract's ABI (abi.json) to decode with, in place of the one on chain")
	return cmd
}

// printUpdates writes each update as one JSON line until ctx ends or count
// outcomes are written; abi, when not nil, decodes its contract's
// resources and events.
func printUpdates(ctx context.Context, w io.Writer, sub *client.Subscription, count uint64, abi *contracts.Contract) error {
	enc := json.NewEncoder(w)
	var n uint64
	for count == 0 || n < count {
		u, err := sub.Next(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // interrupted
			}
			return err
		}
		var line any
		if u.Snapshot != nil {
			line = snapshotLine(u, abi)
		} else {
			line = outcomeLine(u.Outcome, abi)
			n++
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

type apiResourceView struct {
	Account  protocol.Address `json:"account"`
	Type     string           `json:"type"`
	ValueHex string           `json:"value_hex"`
	Value    json.RawMessage  `json:"value,omitempty"`
}

func snapshotLine(u client.Update, abi *contracts.Contract) any {
	s := u.Snapshot
	v := struct {
		Snapshot struct {
			Channel   protocol.ChannelID `json:"channel"`
			Height    uint64             `json:"height"`
			Digest    protocol.Hash      `json:"digest"`
			Members   []protocol.Address `json:"members"`
			Resources []apiResourceView  `json:"resources"`
		} `json:"snapshot"`
	}{}
	v.Snapshot.Channel, v.Snapshot.Height, v.Snapshot.Digest, v.Snapshot.Members = s.Channel, s.Height, s.Digest, s.Members
	v.Snapshot.Resources = []apiResourceView{}
	for _, k := range s.State.Keys() {
		r := apiResourceView{Account: k.Account, Type: k.Type, ValueHex: hex.EncodeToString(s.State[k])}
		if c := abiFor(k.Type, abi); c != nil {
			if j, err := c.DecodeResource(k.Type, s.State[k]); err == nil {
				r.Value = j
			}
		}
		v.Snapshot.Resources = append(v.Snapshot.Resources, r)
	}
	return v
}

func outcomeLine(o *protocol.Outcome, abi *contracts.Contract) any {
	v := &apiOutcomeView{
		Height: o.Height, Kind: o.Kind.String(), Hash: &o.Hash, Status: o.Result.Status,
		AbortCode: o.Result.AbortCode, Message: o.Message, GasUsed: o.Result.GasUsed,
		ChangeSet: o.ChangeSet, Events: eventViews(o.Events, abi), Digest: &o.Digest,
	}
	if len(o.Output) > 0 {
		v.OutputHex = hex.EncodeToString(o.Output)
	}
	return v
}
