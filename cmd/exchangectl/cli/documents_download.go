package cli

import (
	"context"
	"path/filepath"

	"github.com/spf13/cobra"
)

// documentsDownloadOptions are the inputs of `documents download`.
type documentsDownloadOptions struct {
	app     *app
	Name    string
	Version int32
	Out     string
}

// newDocumentsDownloadCmd is `exchangectl documents download`.
func newDocumentsDownloadCmd(a *app, runF func(*documentsDownloadOptions) error) *cobra.Command {
	opts := &documentsDownloadOptions{app: a}
	cmd := &cobra.Command{
		Use:   "download NAME [--version N] [-o FILE]",
		Short: "Download a version of a document, checking its SHA-256",
		Long: "Download the latest version of a document, or --version N, to FILE (default:\n" +
			"the file name it was uploaded with, in the current directory). The file is\n" +
			"checked against the version's size and SHA-256 and only then put in place;\n" +
			"a download that fails leaves FILE as it was.",
		Example: "  exchangectl documents download unicef/01jd8x4k2m9q7r3t5v6w8y0z1a -o manual.pdf",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := documentName(opts.Name); err != nil {
				return err
			}
			if opts.Version < 0 {
				return usageErrorf("--version %d: want 1 or more (0 for the latest)", opts.Version)
			}
			if runF != nil {
				return runF(opts)
			}
			return runDocumentsDownload(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int32Var(&opts.Version, "version", 0, "the version to download (default: the latest)")
	cmd.Flags().StringVarP(&opts.Out, "out", "o", "", "the file to write (default: the uploaded file name)")
	return cmd
}

// runDocumentsDownload downloads the version into the file.
func runDocumentsDownload(ctx context.Context, o *documentsDownloadOptions) error {
	name, err := documentName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	out := o.Out
	if out == "" {
		v, err := c.Documents.Versions(ctx, name)
		if err != nil {
			return err
		}
		for _, version := range v {
			if o.Version == 0 || version.GetVersion() == o.Version {
				out = filepath.Base(version.GetFileName())
			}
		}
		if out == "" || out == "." || out == "/" {
			return usageErrorf("%s has no such version to name the file after; give -o FILE", shortDocumentName(name))
		}
	}
	file, err := createOutput(o.app.path(out))
	if err != nil {
		return err
	}
	v, err := c.Documents.Download(ctx, name, o.Version, file)
	if err != nil {
		file.Abort()
		return err
	}
	if err := file.Commit(); err != nil {
		return err
	}
	return printOne(o.app, v, documentVersionDetail)
}
