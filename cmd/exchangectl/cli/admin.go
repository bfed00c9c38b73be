package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newAdminCmd is `exchangectl admin`.
func newAdminCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("admin", "Back up the exchange and read its state (secretariat)",
		"Online backups and the state of the store. Secretariat only.")
	cmd.AddCommand(newAdminBackupCmd(a), newAdminStatusCmd(a))
	return cmd
}

// newAdminBackupCmd is `exchangectl admin backup`.
func newAdminBackupCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "backup -o FILE",
		Short: "Save a consistent snapshot of the database while it serves",
		Long: "Streams a snapshot of the whole database into FILE (written to FILE.tmp,\n" +
			"synced, then renamed; mode 0600). Restore it with `exchanged restore --from FILE`.\n" +
			"It holds referral details (encrypted, with their keys): keep it as safe as the server.",
		Example: "  exchangectl admin backup -o exchange-$(date +%F).db",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("-o FILE is required")
			}
			ctx := cmd.Context()
			c, err := a.connect(ctx)
			if err != nil {
				return err
			}
			path := a.path(out)
			tmp, err := os.OpenFile(path+".tmp", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			revision, size, err := c.Admin.Backup(ctx, tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), path)
			}
			if err != nil {
				fmt.Fprintf(a.env.Stderr, "Nothing was written to %s.\n", out)
				return err
			}
			fmt.Fprintf(a.env.Stdout, "backup of revision %d (%d bytes) written to %s\n", revision, size, filepath.Clean(out))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the backup file to write")
	return cmd
}

// newAdminStatusCmd is `exchangectl admin status`.
func newAdminStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the database's size, quota, revisions and audit head",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			st, err := c.Admin.Status(cmd.Context())
			if err != nil {
				return err
			}
			maxSize := "none"
			if st.GetMaxSize() > 0 {
				maxSize = fmt.Sprint(st.GetMaxSize())
			}
			return printOne(a, st, func(st *exchangev1.GetStorageStatusResponse) []field {
				return []field{
					{"Size (bytes)", fmt.Sprint(st.GetSize())},
					{"Size limit (bytes)", maxSize},
					{"Revision", fmt.Sprint(st.GetRevision())},
					{"Change log starts after", fmt.Sprint(st.GetCompactedRevision())},
					{"Audit head", fmt.Sprintf("%d:%x", st.GetAuditSequence(), st.GetAuditHead())},
				}
			})
		},
	}
}
