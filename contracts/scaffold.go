package contracts

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
)

// AssemblyScriptVersion is the assemblyscript compiler the contracts here
// are built with, pinned exactly in package.json; a contract project
// written by NewProject pins the same.
const AssemblyScriptVersion = "0.28.20"

//go:embed sdk/*.ts package-lock.json
var sdkFiles embed.FS

// SDK returns the AssemblyScript SDK's sources (abort.ts, address.ts, …,
// index.ts), the same files the demo contracts import as "../sdk".
func SDK() fs.FS {
	sub, err := fs.Sub(sdkFiles, "sdk")
	if err != nil {
		panic(err) // the folder is embedded
	}
	return sub
}

// PackageLock returns the npm lockfile that pins assemblyscript and its
// dependencies, with the package named name instead of scraft-contracts,
// so that `npm ci` in a contract project installs exactly the compiler the
// demo contracts are built with.
func PackageLock(name string) ([]byte, error) {
	raw, err := sdkFiles.ReadFile("package-lock.json")
	if err != nil {
		return nil, err
	}
	// Only the package's own name changes (at the top and in the root
	// package); everything else is kept byte for byte.
	old := []byte(`"name": "scraft-contracts"`)
	if bytes.Count(raw, old) != 2 {
		return nil, fmt.Errorf("contracts: package-lock.json: want the package name twice")
	}
	q, _ := json.Marshal(name)
	return bytes.ReplaceAll(raw, old, append([]byte(`"name": `), q...)), nil
}
