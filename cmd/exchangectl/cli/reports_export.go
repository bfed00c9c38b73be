package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/reportprint"
)

// reportsExportOptions are the options of `reports export`.
type reportsExportOptions struct {
	app     *app
	Name    string
	Version int32
	HTML    string
	PDF     string
}

// newReportsExportCmd is `exchangectl reports export`.
func newReportsExportCmd(a *app, runF func(*reportsExportOptions) error) *cobra.Command {
	opts := &reportsExportOptions{app: a}
	cmd := &cobra.Command{
		Use:   "export NAME [--version N] [--html FILE] [--pdf FILE]",
		Short: "Write a report as a printable HTML page and/or a PDF",
		Long: "Write the report as one self-contained HTML page (embedded styles, an SVG bar\n" +
			"chart of referrals by state; nothing is fetched when it opens) and, with\n" +
			"--pdf, print that page to an A4 PDF with headless Chromium (found on PATH, or\n" +
			"named by $CHROMIUM).",
		Example: "  exchangectl reports export ngo-kh/01jd8x4k2m9q7r3t5v6w8y0z1a --html q2.html --pdf q2.pdf",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := reportName(opts.Name); err != nil {
				return err
			}
			if opts.HTML == "" && opts.PDF == "" {
				return usageErrorf("nothing to write: give --html FILE, --pdf FILE or both")
			}
			if opts.Version < 0 {
				return usageErrorf("--version %d: want 1 or more", opts.Version)
			}
			if runF != nil {
				return runF(opts)
			}
			return runReportsExport(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int32Var(&opts.Version, "version", 0, "a submitted version (default: your draft, or the last submitted version)")
	cmd.Flags().StringVar(&opts.HTML, "html", "", "write the HTML page to FILE")
	cmd.Flags().StringVar(&opts.PDF, "pdf", "", "print the page to a PDF at FILE (needs Chromium)")
	return cmd
}

// runReportsExport reads the report and writes the files asked for.
func runReportsExport(ctx context.Context, o *reportsExportOptions) error {
	chromium := ""
	if o.PDF != "" {
		if chromium = reportprint.ChromiumPath(); chromium == "" {
			return fmt.Errorf("--pdf needs Chromium: install it (Debian: apt-get install chromium) or set CHROMIUM to its path; --html works without it")
		}
	}
	r, err := fetchReport(ctx, o.app, o.Name, o.Version)
	if err != nil {
		return err
	}
	var page bytes.Buffer
	if err := reportprint.HTML(&page, r); err != nil {
		return err
	}
	if o.HTML != "" {
		if err := writeOutput(o.app.path(o.HTML), page.Bytes()); err != nil {
			return err
		}
	}
	if o.PDF == "" {
		return nil
	}
	// Chromium prints a file: give it a private copy of the page.
	dir, err := os.MkdirTemp("", "exchangectl-report-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	htmlPath := filepath.Join(dir, "report.html")
	if err := os.WriteFile(htmlPath, page.Bytes(), 0o600); err != nil {
		return err
	}
	pdf, err := reportprint.PDF(ctx, chromium, htmlPath)
	if err != nil {
		return err
	}
	return writeOutput(o.app.path(o.PDF), pdf)
}

// writeOutput writes data to path by the rules of outputFile.
func writeOutput(path string, data []byte) error {
	out, err := createOutput(path)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Abort()
		return err
	}
	return out.Commit()
}
