package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/protocol"
)

func init() {
	rootCmd.AddCommand(versionCmd(), keygenCmd())
}

func keygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create an ed25519 key file and print its address",
		Long: `Create a new ed25519 key and write it to FILE with mode 0600. The file
must not exist yet. Prints the key's address (0x + 32 hex digits), which
identifies the member on the settlement chain and in channels.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := protocol.GenerateKey(nil)
			if err != nil {
				return err
			}
			if err := protocol.SaveKey(out, k); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Address())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "path of the key file to create (required)")
	cmd.MarkFlagRequired("out")
	return cmd
}
