package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/manifest"
	"github.com/spf13/cobra"
)

func kosCmd() *cobra.Command {
	var cfgFile, server, token, out, description string
	var keyImages []string
	cmd := &cobra.Command{
		Use:   "kos STUDY_UID",
		Short: "Build a study's KOS manifest, or flag key images",
		Long: `Build the XDS-I.b imaging manifest (Key Object Selection, title 113030) of a
stored study through a running server's API (POST /api/studies/{study}/manifest,
a token with the build-manifests permission). The manifest is stored in the
study; building an unchanged study again gives the same manifest.

With --key-image SOP[:frame[,frame...]] (repeatable) and --description, flag
key images instead: a key-image note (title 113000 "Of Interest") is stored in
the study (POST /api/studies/{study}/key-images, a radiologist's token).

The server is --server URL, or http://<listen.http> of --config; the token
--token or $RELAIS_TOKEN. -o FILE saves the Part 10 document; the answer is
printed as JSON.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			study := args[0]
			if server == "" {
				cfg := config.Default()
				if cfgFile != "" {
					var err error
					if cfg, err = config.Load(cfgFile); err != nil {
						return err
					}
				}
				if cfg.Listen.HTTP == "" {
					return errors.New("no HTTP listener in the configuration: give --server URL")
				}
				server = serverURL(cfg.Listen.HTTP)
			}
			if token == "" {
				token = os.Getenv("RELAIS_TOKEN")
			}
			path := "/api/studies/" + url.PathEscape(study) + "/manifest"
			var body []byte
			if len(keyImages) > 0 {
				req := manifest.KeyImagesRequest{Description: description}
				for _, k := range keyImages {
					ki, err := parseKeyImage(k)
					if err != nil {
						return err
					}
					req.Instances = append(req.Instances, ki)
				}
				body, _ = json.Marshal(req)
				path = "/api/studies/" + url.PathEscape(study) + "/key-images"
			} else if description != "" {
				return errors.New("--description goes with --key-image")
			}
			rq, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, strings.TrimRight(server, "/")+path, bytes.NewReader(body))
			if err != nil {
				return err
			}
			if body != nil {
				rq.Header.Set("Content-Type", "application/json")
			}
			if out != "" {
				rq.Header.Set("Accept", "application/dicom")
			} else {
				rq.Header.Set("Accept", "application/json")
			}
			if token != "" {
				rq.Header.Set("Authorization", "Bearer "+token)
			} else {
				fmt.Fprintln(os.Stderr, "relais: warning: no token (--token or RELAIS_TOKEN)")
			}
			resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(rq)
			if err != nil {
				return fmt.Errorf("the server's API is unreachable: %w", err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
				var e struct {
					Error            string `json:"error"`
					ErrorDescription string `json:"error_description"`
				}
				if json.Unmarshal(b, &e) == nil && (e.Error != "" || e.ErrorDescription != "") {
					msg := e.Error
					if e.ErrorDescription != "" {
						msg = e.ErrorDescription
					}
					return fmt.Errorf("%s (HTTP %d)", msg, resp.StatusCode)
				}
				return fmt.Errorf("POST %s: HTTP %s: %s", rq.URL, resp.Status, strings.TrimSpace(string(b)))
			}
			created := resp.StatusCode == http.StatusCreated
			if out == "" {
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			meta, _, err := dicom.ReadFileMeta(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("the server's answer is not a DICOM file: %w", err)
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			what := "unchanged"
			if created {
				what = "created"
			}
			return printJSON(cmd.OutOrStdout(), map[string]any{"sop_instance_uid": meta.MediaStorageSOPInstanceUID,
				"study_instance_uid": study, "created": created, "status": what, "file": out, "retrieve_url": resp.Header.Get("Location")})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file (its listen.http is the server)")
	f.StringVar(&server, "server", "", "base URL of the running server (default: http://<listen.http>)")
	f.StringVar(&token, "token", "", "API token (default $RELAIS_TOKEN)")
	f.StringVarP(&out, "output", "o", "", "save the Part 10 document to this file")
	f.StringArrayVar(&keyImages, "key-image", nil, "flag SOP[:frame[,frame...]] as a key image (repeatable)")
	f.StringVar(&description, "description", "", "key-image note's description (with --key-image)")
	return cmd
}

// parseKeyImage reads SOP[:frame[,frame...]].
func parseKeyImage(s string) (manifest.KeyImage, error) {
	sop, frames, _ := strings.Cut(strings.TrimSpace(s), ":")
	if sop == "" {
		return manifest.KeyImage{}, fmt.Errorf("--key-image %q: no SOP Instance UID", s)
	}
	ki := manifest.KeyImage{SOPInstanceUID: sop}
	if frames != "" {
		for _, f := range strings.Split(frames, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return manifest.KeyImage{}, fmt.Errorf("--key-image %q: frame %q is not a number from 1", s, f)
			}
			ki.Frames = append(ki.Frames, n)
		}
	}
	return ki, nil
}
