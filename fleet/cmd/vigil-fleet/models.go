package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/postgres"
	vmodels "github.com/vigil-edge/vigil/models"
)

const modelsUsage = `usage: vigil-fleet models <add|list> [flags]

  add FILE --name N --version V --family yolox|yolov8|yolov5 [--manifest base.json | --labels FILE] --key fleet.key (--data DIR | --store postgres://…)
  list (--data DIR | --store postgres://…)

With --store (default $VIGIL_FLEET_STORE) the catalogue is the one in PostgreSQL that every
vigil-fleet serve --store instance serves; --data is then only a cache.
`

// modelsCmd runs `vigil-fleet models add|list`.
func modelsCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, modelsUsage)
		return usageError{errors.New("models: add or list?")}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, modelsUsage)
		return nil
	case "add":
		return modelsAdd(args[1:], stdout, stderr)
	case "list":
		return modelsList(args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, modelsUsage)
		return usageError{fmt.Errorf("models: unknown command %q", args[0])}
	}
}

func modelsAdd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("models add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "model name; required")
	version := fs.String("version", "", "model version; required")
	family := fs.String("family", "", "decoder family: "+strings.Join(catalog.Families, ", ")+"; required")
	manifest := fs.String("manifest", "", "a manifest to copy input, output, labels and thresholds from")
	labels := fs.String("labels", "", "labels file, one per line (without --manifest)")
	size := fs.Int("input-size", 640, "square input size in pixels (without --manifest)")
	keyFile := fs.String("key", "", "fleet private key (vigil-fleet keygen); required")
	dataDir := fs.String("data", "", "the fleet's data folder; required without --store")
	store := storeFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("models add: want exactly one model FILE")}
	}
	if *name == "" || *version == "" || *family == "" || *keyFile == "" || *dataDir == "" && *store == "" {
		return usageError{errors.New("models add: --name, --version, --family, --key and --data (or --store) are required")}
	}
	spec := catalog.AddSpec{Name: *name, Version: *version, Family: *family, InputSize: *size}
	switch {
	case *manifest != "":
		m, err := vmodels.LoadManifest(*manifest)
		if err != nil {
			return fmt.Errorf("models add: %w", err)
		}
		spec.Base = &m
	case *labels != "":
		if spec.Labels, err = readLabels(*labels); err != nil {
			return fmt.Errorf("models add: %w", err)
		}
	default:
		return usageError{errors.New("models add: give --manifest or --labels")}
	}
	key, err := catalog.LoadPrivateKey(*keyFile)
	if err != nil {
		return fmt.Errorf("models add: %w", err)
	}
	reg, done, err := openModels(*dataDir, *store)
	if err != nil {
		return fmt.Errorf("models add: %w", err)
	}
	defer done()
	m, err := reg.Add(pos[0], spec, key)
	if err != nil {
		return fmt.Errorf("models add: %w", err)
	}
	fmt.Fprintf(stdout, "added %s@%s: %s, %d bytes, sha256 %s, signed by key %s\n", m.Name, m.Version, m.File, m.Size, m.SHA256, m.KeyID)
	return nil
}

func readLabels(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

func modelsList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("models list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "the fleet's data folder; required without --store")
	store := storeFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dataDir == "" && *store == "" {
		return usageError{errors.New("models list: --data or --store is required")}
	}
	reg, done, err := openModels(*dataDir, *store)
	if err != nil {
		return fmt.Errorf("models list: %w", err)
	}
	defer done()
	ms, err := reg.List()
	if err != nil {
		return fmt.Errorf("models list: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tFAMILY\tSIZE\tSHA256\tADDED\tSTATUS")
	for _, m := range ms {
		status := "ok"
		if m.Bad {
			status = "bad: " + m.BadReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.16s…\t%s\t%s\n", m.Name, m.Version, m.Family, m.Size, m.SHA256,
			m.AddedAt.Format("2006-01-02 15:04"), status)
	}
	return tw.Flush()
}

// parseInterleaved parses flags that may come before and after positional arguments, and
// returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// storeFlag registers --store, the PostgreSQL database that holds the shared catalogue.
func storeFlag(fs *flag.FlagSet) *string {
	return fs.String("store", os.Getenv("VIGIL_FLEET_STORE"), "the fleet's PostgreSQL database (postgres://user@host/db; password from $PGPASSWORD or ~/.pgpass): the catalogue every vigil-fleet serve --store instance serves (default $VIGIL_FLEET_STORE)")
}

// openModels opens the catalogue in dataDir, or with store the one in PostgreSQL (caching
// files in dataDir, or in a temporary folder without one); done releases it.
func openModels(dataDir, store string) (_ *catalog.Registry, done func(), err error) {
	if store == "" {
		reg, err := catalog.Open(dataDir)
		return reg, func() {}, err
	}
	pc, err := postgres.OpenCatalog(context.Background(), store)
	if err != nil {
		return nil, nil, err
	}
	tmp := ""
	if dataDir == "" {
		if tmp, err = os.MkdirTemp("", "vigil-fleet-models-"); err != nil {
			pc.Close()
			return nil, nil, err
		}
		dataDir = tmp
	}
	done = func() {
		pc.Close()
		if tmp != "" {
			_ = os.RemoveAll(tmp)
		}
	}
	reg, err := catalog.OpenShared(dataDir, pc)
	if err != nil {
		done()
		return nil, nil, err
	}
	return reg, done, nil
}
