package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/comet"
	"github.com/scraft/scraft/settlement/devchain"
)

const (
	// chainKeyName is the chain's key file in its data folder when
	// `scraft chain` runs without --key.
	chainKeyName = "chain.key"
	// chainPinName is the file that pins the chain's key when no
	// --chain-key is given: in a node's data folder, or next to the --key
	// file of a command.
	chainPinName = "chain.pin"
)

// chainKeyHelp is the --chain-key flag's help, completed with where the
// command pins the key without it.
const chainKeyHelp = "address of the settlement chain's key (0x + 32 hex), or several comma-separated: the chain must present one of them (default: "

// loadChainKey returns the chain's key: the one in file when given, which
// must exist, else data/chain.key, made on the first start.
func loadChainKey(data, file string) (k *protocol.Key, path string, created bool, err error) {
	if file != "" {
		k, err = protocol.LoadKey(file)
		return k, file, false, err
	}
	path = filepath.Join(data, chainKeyName)
	k, err = protocol.LoadKey(path)
	if !errors.Is(err, os.ErrNotExist) {
		return k, path, false, err
	}
	if k, err = protocol.GenerateKey(nil); err != nil {
		return nil, path, false, err
	}
	if err := protocol.SaveKey(path, k); err != nil {
		return nil, path, false, err
	}
	return k, path, true, nil
}

// chainTrust returns how a command verifies the chain's key: the addresses
// of --chain-key when given, else the pin file in pinDir (written on the
// first contact). A command with neither cannot verify the chain.
func chainTrust(keys []string, pinDir string) ([]devchain.DialOption, error) {
	if len(keys) > 0 {
		addrs := make([]protocol.Address, 0, len(keys))
		for _, s := range keys {
			a, err := protocol.ParseAddress(s)
			if err != nil {
				return nil, fmt.Errorf("--chain-key: %w", err)
			}
			addrs = append(addrs, a)
		}
		return []devchain.DialOption{devchain.WithChainKeys(addrs...)}, nil
	}
	if pinDir == "" {
		return nil, errors.New("--chain-key is required: without --key there is no folder to pin the chain's key in (see scraft chain key)")
	}
	return []devchain.DialOption{devchain.WithPinFile(filepath.Join(pinDir, chainPinName))}, nil
}

// chainKeyCmd is `scraft chain key`: the address of a chain's key, for
// --chain-key.
func chainKeyCmd() *cobra.Command {
	var data, keyFile string
	cmd := &cobra.Command{
		Use:   "key --data DIR | --key FILE",
		Short: "Print the address of the chain's key (what clients pin with --chain-key)",
		Long: `Print the address of the key the chain serving from DIR presents on its
TLS link (DIR/chain.key, made on its first start), or of the key in FILE.
Nodes and commands pin it with --chain-key ADDR; without that flag they pin
the key the chain presents on first contact, in a chain.pin file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := keyFile
			if path == "" {
				if data == "" {
					return errors.New("chain key: give --data DIR or --key FILE")
				}
				path = filepath.Join(data, chainKeyName)
			}
			k, err := protocol.LoadKey(path)
			if errors.Is(err, os.ErrNotExist) && keyFile == "" {
				return fmt.Errorf("chain key: %s does not exist yet: the chain makes it on its first start", path)
			}
			if err != nil {
				return fmt.Errorf("chain key: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Address())
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "the chain's data folder (its --data)")
	cmd.Flags().StringVar(&keyFile, "key", "", "the chain's key file (its --key)")
	return cmd
}

// dialChainAt connects to the chain at addr, signing with key and trusting
// what trust says (chainTrust). Several comma-separated addresses are the
// API addresses of a chain's validators (scraft chain --engine comet): the
// client believes an answer only when f+1 of them give it alike, f =
// (n-1)/3, and their keys must be given (keys: --chain-key), since no one
// validator's word may pin the others'.
func dialChainAt(addr string, key *protocol.Key, keys []string, trust []devchain.DialOption) (*devchain.Client, error) {
	addrs := strings.Split(addr, ",")
	if len(addrs) == 1 {
		return devchain.Dial(addr, key, trust...)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("chain %s: a chain of %d validators needs --chain-key with their keys (scraft chain testnet prints them)", addr, len(addrs))
	}
	return comet.DialQuorum(addrs, key, (len(addrs)-1)/3, trust...)
}
