# bash completion for sbx (installed by `make install` into share/bash-completion/completions).
# Sandbox ids are completed from `sbx ls --json` (the configured apid, 2 s at most).
_sbx_ids() {
	timeout 2 sbx ls --json 2>/dev/null | sed -n 's/^ *"id": "\([^"]*\)".*/\1/p'
}

_sbx() {
	local cur prev verb i
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	local verbs="create ls inspect exec cp logs pause resume renew rm port run mcp help"
	local global="--url --api-key-file --json --help --version"
	verb=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--url | --api-key-file) ((i++)) ;;
		-*) ;;
		*) verb=${COMP_WORDS[i]}; break ;;
		esac
	done
	case $prev in
	--api-key-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--network) COMPREPLY=($(compgen -W "none deny allow" -- "$cur")); return ;;
	--state) COMPREPLY=($(compgen -W "Pending Running Pausing Paused Resuming Stopping Terminated Failed" -- "$cur")); return ;;
	--url | --image | --cpu | --memory | --timeout | --env | -e | --label | --allow-domain | --volume | -w | --workdir | -u | --user) return ;;
	esac
	if [ -z "$verb" ]; then
		COMPREPLY=($(compgen -W "$verbs $global" -- "$cur"))
		return
	fi
	local create="--image --cpu --memory --timeout --env --label --network --allow-domain --volume --wait"
	local opts=
	case $verb in
	create) opts="$create" ;;
	run) opts="$create -w --workdir -u --user -t -i" ;;
	ls) opts="--state --label" ;;
	exec) opts="-e --env -w --workdir -u --user --timeout -i -t -it" ;;
	logs) opts="-f --follow" ;;
	rm) opts="-f --force" ;;
	renew) opts="--timeout" ;;
	port) opts="--show-token" ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts --json --url --api-key-file --help" -- "$cur"))
		return
	fi
	case $verb in
	inspect | exec | logs | pause | resume | renew | rm | port)
		COMPREPLY=($(compgen -W "$(_sbx_ids)" -- "$cur")) ;;
	cp)
		if [[ $cur == *:* ]]; then
			return
		fi
		COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "$(_sbx_ids | sed 's/$/:/')" -- "$cur"))
		compopt -o nospace 2>/dev/null ;;
	esac
}
complete -F _sbx sbx
