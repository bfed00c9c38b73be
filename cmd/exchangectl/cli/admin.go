package cli

import (
	"fmt"
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
		Long: "Streams a snapshot of the whole database into FILE (written to a temporary\n" +
			"file beside it, synced, then renamed; mode 0600). A FILE that is a device or a\n" +
			"pipe (/dev/stdout, a FIFO) is written through, never replaced; a symbolic link\n" +
			"is followed, never replaced. Restore it with `exchanged restore --from FILE`.\n" +
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
			file, err := createOutput(a.path(out))
			if err != nil {
				return err
			}
			revision, size, err := c.Admin.Backup(ctx, file)
			if err == nil {
				err = file.Commit()
			} else {
				file.Abort()
			}
			if err != nil {
				if file.WrittenThrough() {
					fmt.Fprintf(a.env.Stderr, "The backup written to %s is incomplete: do not restore it.\n", out)
				} else {
					fmt.Fprintf(a.env.Stderr, "Nothing was written to %s.\n", out)
				}
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
