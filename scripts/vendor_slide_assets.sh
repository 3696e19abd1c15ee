#!/usr/bin/env bash
# Refresh slides/vendor/ from the npm registry: reveal.js (decks) and KaTeX (math), so decks open
# from disk with no network. Run only when upgrading; the result is committed.
set -euo pipefail
REVEAL=4.6.1
KATEX=0.16.22
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "reveal.js@$REVEAL" "katex@$KATEX" >/dev/null
mkdir r k && tar xzf "reveal.js-$REVEAL.tgz" -C r && tar xzf "katex-$KATEX.tgz" -C k
out="$root/slides/vendor"
rm -rf "$out" && mkdir -p "$out/reveal/dist/theme" "$out/reveal/plugin/notes" "$out/katex/contrib"
cp r/package/LICENSE "$out/reveal/"
cp r/package/dist/reveal.css r/package/dist/reveal.js "$out/reveal/dist/"
cp r/package/dist/theme/white.css "$out/reveal/dist/theme/"
cp -r r/package/dist/theme/fonts "$out/reveal/dist/theme/"
cp r/package/plugin/notes/notes.js "$out/reveal/plugin/notes/"
cp k/package/LICENSE "$out/katex/"
cp k/package/dist/katex.min.js k/package/dist/katex.min.css "$out/katex/"
cp k/package/dist/contrib/auto-render.min.js "$out/katex/contrib/"
mkdir -p "$out/katex/fonts" && cp k/package/dist/fonts/*.woff2 "$out/katex/fonts/"
printf 'reveal.js %s (MIT)\nKaTeX %s (MIT)\nfrom the npm registry by scripts/vendor_slide_assets.sh\n' "$REVEAL" "$KATEX" > "$out/VERSIONS.txt"
du -sh "$out"
