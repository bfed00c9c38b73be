package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/store"
)

// restoreOptions are the settings of `exchanged restore`.
type restoreOptions struct {
	from    string
	dataDir string
	force   bool
	etcd    *etcdOptions
}

func newRestoreCommand(stdout io.Writer, etcd *etcdOptions) *cobra.Command {
	o := &restoreOptions{etcd: etcd}
	cmd := &cobra.Command{
		Use:   "restore --from BACKUP [--data-dir DIR]",
		Short: "Restore the database from a backup made with `exchangectl admin backup`",
		Long: `restore checks a backup file (every page, the schema version and the
audit chain) and installs it as DATA_DIR/exchange.db. exchanged must not be
running on DATA_DIR. An existing database is kept beside it as
exchange.db.before-restore-TIME, and only with --force.

With --etcd-endpoints it copies the backup into the etcd cluster instead
(a backup taken on either engine restores into either). No exchanged may
be serving the cluster's exchange while it runs; an exchange already there
is replaced only with --force, and not kept (take a backup first).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return restore(cmd.Context(), o, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "the backup file")
	f.StringVar(&o.dataDir, "data-dir", env("EXCHANGE_DATA_DIR", "exchange-data"), "the data directory to restore into (EXCHANGE_DATA_DIR)")
	f.BoolVar(&o.force, "force", false, "replace an existing database (it is kept beside the restored one)")
	cmd.MarkFlagRequired("from")
	return cmd
}

func restore(ctx context.Context, o *restoreOptions, stdout io.Writer) error {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	target := filepath.Join(o.dataDir, "exchange.db")
	staged := target + ".restoring"
	if err := copyFile(o.from, staged); err != nil {
		return err
	}
	defer os.Remove(staged)
	st, err := store.Open(staged, store.Options{CheckOnOpen: true})
	if err != nil {
		return fmt.Errorf("%s is not a usable backup: %w", o.from, err)
	}
	entries, err := st.VerifyAudit(ctx)
	revision := st.Revision()
	if err != nil {
		st.Close()
		return fmt.Errorf("%s: %w", o.from, err)
	}
	if o.etcd != nil && o.etcd.enabled() {
		defer st.Close()
		return restoreIntoEtcd(ctx, o, st, revision, entries, stdout)
	}
	st.Close()
	if _, err := os.Stat(target); err == nil {
		if !o.force {
			return fmt.Errorf("%s exists: stop exchanged and run again with --force to replace it (it is kept beside)", target)
		}
		// Opening it proves no exchanged holds it.
		live, err := store.Open(target, store.Options{})
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		live.Close()
		aside := target + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(target, aside); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "kept the previous database as %s\n", aside)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(staged, target); err != nil {
		return err
	}
	if dir, err := os.Open(o.dataDir); err == nil {
		dir.Sync()
		dir.Close()
	}
	fmt.Fprintf(stdout, "restored %s into %s: revision %d, %d audit entries verified\n", o.from, target, revision, entries)
	return nil
}

// restoreIntoEtcd copies the checked backup st into the etcd cluster.
func restoreIntoEtcd(ctx context.Context, o *restoreOptions, st *store.Store, revision int64, entries uint64, stdout io.Writer) error {
	eo, err := o.etcd.storeOptions()
	if err != nil {
		return err
	}
	if err := store.RestoreEtcd(ctx, st, eo, o.force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into etcd %s under %s: revision %d, %d audit entries verified\n",
		o.from, strings.Join(eo.Endpoints, ","), eo.Prefix, revision, entries)
	return nil
}

// copyFile copies src to dst (mode 0600) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
