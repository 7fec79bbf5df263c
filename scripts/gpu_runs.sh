#!/usr/bin/env bash
# Keeps the run directories a GPU machine returned (run-STUDY-SCALE-VARIANT-seedK.tgz, written by
# gpu_slice.sh when its deadline stops runs) from one session to the next, so that a later task
# with a GPU resumes them from their checkpoints. runs/ is git-ignored and may not outlive this
# machine; commits do. The tarballs live on the side branch `gpu-runs`, written with git's
# plumbing: the checkout, its index and main's history are never touched, and the tree that
# travels to the device stays small.
#
#   bash scripts/gpu_runs.sh keep FILE...       # add (or replace) tarballs on gpu-runs
#   bash scripts/gpu_runs.sh list               # what the branch holds, with sizes
#   bash scripts/gpu_runs.sh restore [STUDY [VARIANT]]
#                                               # unpack them into runs/; then carry
#                                               # runs/STUDY/gpu/VARIANT (one variant's 3 seeds
#                                               # fit the 64 MiB a call carries, two may not)
#   bash scripts/gpu_runs.sh drop NAME...       # forget tarballs whose runs have finished slices
#
# Environment: REPO (the repository to use; default this script's).
set -euo pipefail
caller=$PWD  # FILE arguments are relative to where the command was given
cd "${REPO:-$(dirname "$0")/..}"
branch=refs/heads/gpu-runs
usage="usage: bash scripts/gpu_runs.sh keep FILE... | list | restore [STUDY [VARIANT]] | drop NAME..."
if [ $# -lt 1 ]; then
  echo "$usage" >&2
  exit 2
fi
command=$1
shift
tip=$(git rev-parse -q --verify "$branch^{commit}" || true)

# Writes a new commit on gpu-runs: its tree is the old one as changed by the function `edit`,
# which runs against a temporary index (the checkout's own index is never read or written).
commit_edit() {
  local message=$1 index tree commit
  index=$(mktemp)
  rm -f "$index"  # git creates it
  export GIT_INDEX_FILE=$index
  if [ -n "$tip" ]; then
    git read-tree "$tip"
  else
    git read-tree --empty
  fi
  edit
  tree=$(git write-tree)
  unset GIT_INDEX_FILE
  rm -f "$index"
  commit=$(git commit-tree "$tree" ${tip:+-p "$tip"} -m "$message")
  git update-ref "$branch" "$commit" ${tip:+"$tip"}
}

case $command in
  keep)
    [ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
    files=()
    for file in "$@"; do
      [[ $file = /* ]] || file=$caller/$file
      files+=("$file")
    done
    set -- "${files[@]}"
    for file in "$@"; do
      name=$(basename "$file")
      if [[ ! $name =~ ^run-[A-Za-z0-9_]+-[a-z]+-[A-Za-z0-9_]+-seed[0-9]+\.tgz$ ]]; then
        echo "$file: not a run tarball of gpu_slice.sh (run-STUDY-SCALE-VARIANT-seedK.tgz)" >&2
        exit 2
      fi
      tar -tzf "$file" > /dev/null || { echo "$file: not a readable gzip tarball" >&2; exit 2; }
    done
    edit_args=("$@")
    edit() {
      local file blob
      for file in "${edit_args[@]}"; do
        blob=$(git hash-object -w "$file")
        git update-index --add --cacheinfo "100644,$blob,$(basename "$file")"
      done
    }
    names=$(for f in "$@"; do basename "$f"; done | tr '\n' ' ')
    names=${names% }
    commit_edit "gpu-runs: keep $names"
    echo "kept on gpu-runs: $names"
    ;;
  list)
    [ -n "$tip" ] || { echo "no gpu-runs branch: nothing kept"; exit 0; }
    git ls-tree -l "$tip" | awk '{printf "%s  %.1f MiB\n", $5, $4 / 1048576}'
    ;;
  restore)
    [ -n "$tip" ] || { echo "no gpu-runs branch: nothing to restore" >&2; exit 1; }
    study=${1:-}
    variant=${2:-}
    restored=0
    for name in $(git ls-tree --name-only "$tip"); do
      if [ -n "$study" ] && [[ $name != run-$study-* ]]; then
        continue
      fi
      if [ -n "$variant" ] && [[ $name != run-$study-*-$variant-seed[0-9]*.tgz ]]; then
        continue
      fi
      git cat-file blob "$tip:$name" | tar -xzf -
      echo "restored $name"
      restored=$((restored + 1))
    done
    [ "$restored" -gt 0 ] || {
      echo "gpu-runs holds no run of ${study:-any study}${variant:+ $variant}" >&2
      exit 1
    }
    ;;
  drop)
    [ $# -ge 1 ] && [ -n "$tip" ] || { echo "$usage (and a gpu-runs branch)" >&2; exit 2; }
    for name in "$@"; do
      git cat-file -e "$tip:$name" 2> /dev/null || { echo "gpu-runs has no $name" >&2; exit 2; }
    done
    edit_args=("$@")
    edit() {
      local name
      for name in "${edit_args[@]}"; do
        git update-index --force-remove "$name"
      done
    }
    commit_edit "gpu-runs: drop $*"
    echo "dropped from gpu-runs: $*"
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
