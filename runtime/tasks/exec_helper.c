/*
 * pinnace-exec: run one command inside a running runc container, as `runc exec` does for a
 * container without seccomp, AppArmor, SELinux, user namespace or Intel RDT (the daemon
 * falls back to `runc exec` for every other container; see runtime/tasks/fastexec.py).
 *
 * The daemon computes everything from runc's state.json and the bundle's config.json and
 * passes it as these arguments, NUL-separated, in a memfd named by `--args-fd N` (so that
 * /proc/<pid>/cmdline shows none of it), or on the command line:
 *
 *   pinnace-exec --init PID:STARTTIME [--frozen FILE:VALUE] [--ns TYPE:PATH]...
 *                [--cgroup DIR]... [--oom N] [--keyring NAME] [--rlimit RES:SOFT:HARD]...
 *                --uid N --gid N [--groups G,G...] --caps B:E:P:I:A --nnp 0|1
 *                [--nofile-soft-to-hard 1] --cwd DIR
 *                [--env K=V]... --pid-file FILE [--started-fd N] -- ARGV...
 *
 * What happens, in runc 1.1's order (libcontainer/nsenter/nsexec.c, process_linux.go
 * setnsProcess.start, setns_init_linux.go, init_linux.go finalizeNamespace/setupUser):
 *
 *   stage 0 (host context, all of it): non-dumpable first, open the namespace files, check
 *     the init process is still the container's (start time) and not frozen, read
 *     cap_last_cap, write its own oom_score_adj (inherited), fork stage 1.
 *   stage 1 (host PID namespace, so never visible in the container's /proc): closes every
 *     fd but the two sync pipes and the cgroup namespace fd, joins ipc, uts, net, mnt (in
 *     that order, as given), then pid, and only then clones stage 2 with CLONE_PARENT (a
 *     child of stage 0), sends its pid to stage 0 and exits. Like runc's nsexec stage 1 ->
 *     stage 2, nothing enters the container's PID namespace before it has the container's
 *     mount namespace (root and cwd), and it is non-dumpable from the start.
 *   stage 0: writes stage 2's pid into every cgroup (cgroup.procs) and sets its rlimits
 *     (prlimit), then lets it go.
 *   stage 2: setns(cgroup) (after the cgroup join, so that before Linux 5.16 the
 *     cgroup.procs permission check is made in the host cgroup namespace), setsid, new
 *     session keyring "_ses.<id>", no_new_privs, fds >= 3 close-on-exec, chdir, check the
 *     cwd is inside the container's root (CVE-2024-21626), drop the bounding set, keep
 *     caps, user (stdio chown, setgroups, setgid, setuid; HOME from /etc/passwd when
 *     unset), chdir again if it was refused before, capset, ambient, PATH lookup as Go's
 *     exec.LookPath, a last handshake with stage 0 (a NUL byte on the error pipe, an answer
 *     on the go pipe: a stage 0 killed meanwhile means no exec), close every fd >= 3 but
 *     the error pipe (runc >= 1.1.12), execve. A SIGTERM to stage 0 SIGKILLs stage 2; a
 *     failure after the handshake (pid file, started byte) kills it before exiting.
 *   stage 0: learns of the execve through a close-on-exec pipe (or reads the child's error
 *     from it), writes the pid file (and a byte to --started-fd), waits, removes the pid
 *     file when --started-fd was given, exits with the child's code (128 + signal).
 *
 * A failure before the command runs prints `pinnace-exec failed: ...` on stderr, writes no
 * pid file and exits 255, as runc does; with exit code 254 (RETRY) when the failure is the
 * helper's own (namespace files, pipes, fork/clone, setns, the cgroup join, rlimits: all
 * before stage 2 is let go, so the command has not run), and the daemon then runs the same
 * exec with `runc exec`, which may succeed (e.g. runc's cgroup v2 EBUSY retry).
 *
 * The helper refuses to run unless /proc/self/exe is a sealed memfd (the daemon execs it
 * from one): until its execve the child is this binary inside the container, and a command
 * such as `#!/proc/self/exe` would otherwise hand the container a writable handle on the
 * host's binary (runc's CVE-2019-5736; runc copies itself into a sealed memfd for the same
 * reason).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_LOWER 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#define KEYCTL_JOIN_SESSION_KEYRING 1

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif
#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

#define MAX_ITEMS 64

struct ns_item {
	int type;
	const char *path;
	int fd;
};

struct rlimit_item {
	int resource;
	struct rlimit limit;
};

static struct {
	pid_t init_pid;
	const char *init_start;
	const char *frozen_file, *frozen_value;
	struct ns_item ns[MAX_ITEMS];
	int n_ns;
	const char *cgroups[MAX_ITEMS];
	int n_cgroups;
	const char *oom;
	const char *keyring;
	struct rlimit_item rlimits[MAX_ITEMS];
	int n_rlimits;
	uid_t uid;
	gid_t gid;
	const char *groups;
	uint64_t caps[5]; /* bounding, effective, permitted, inheritable, ambient */
	int nnp;
	int nofile_soft_to_hard;
	const char *cwd;
	char **env;
	int n_env;
	const char *pid_file;
	int started_fd;
	char **argv;
} opt;

static int err_fd = -1; /* stage 1's and stage 2's error pipe to stage 0 */
static int cap_last = 40; /* /proc/sys/kernel/cap_last_cap, read by stage 0 on the host */

/* Report a failure and exit 255. In the child the message goes to the parent, which prints
 * it: the child's stderr is the command's. */
#define RETRY 254

static void vdie(int code, const char *fmt, va_list ap)
{
	char buf[4096];
	int n;

	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		n = 0;
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	if (err_fd >= 0) {
		if (write(err_fd, buf, n) < 0) {
			/* nothing more to do: the parent sees no exec and no message */
		}
		_exit(255);
	}
	dprintf(2, "pinnace-exec failed: %.*s\n", n, buf);
	exit(code);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdie(255, fmt, ap);
	va_end(ap);
}

/* A failure of the helper's own before the command can have run: the daemon uses runc exec
 * instead (in stage 1 and 2 the code is stage 0's to choose). */
static void retry(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdie(RETRY, fmt, ap);
	va_end(ap);
}

static long long parse_ll(const char *s, const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		die("bad %s %s", what, s);
	return v;
}

static uint64_t parse_hex(const char *s, char **end)
{
	errno = 0;
	return strtoull(s, end, 16);
}

static int ns_type(const char *name)
{
	static const struct {
		const char *name;
		int type;
	} types[] = {
		{"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
		{"net", CLONE_NEWNET},   {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
		{"cgroup", CLONE_NEWCGROUP},
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(types[i].name, name))
			return types[i].type;
	die("unknown namespace type %s", name);
	return 0;
}

/* --args-fd N: the rest of the command line, NUL-separated, is in that file (a memfd the
 * daemon wrote) and follows the other arguments; so /proc/<pid>/cmdline, which anyone in
 * the container can read, shows nothing of the plan (host pids, paths, cgroups, env). */
static char **args_from_fd(int argc, char **argv, int *out_argc)
{
	int fd = -1, n = 0, cap;
	char *buf, **out;
	struct stat st;
	size_t got = 0;

	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--args-fd"))
			fd = (int)parse_ll(argv[i + 1], "args fd");
	if (fd < 0) {
		*out_argc = argc;
		return argv;
	}
	if (fstat(fd, &st) < 0)
		retry("args fd: %s", strerror(errno));
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		retry("out of memory");
	while (got < (size_t)st.st_size) {
		ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			retry("read args fd: %s", r < 0 ? strerror(errno) : "short");
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(fd);
	cap = argc + 1;
	for (size_t k = 0; k < got; k++)
		cap += buf[k] == '\0';
	out = calloc((size_t)cap, sizeof(char *));
	if (!out)
		retry("out of memory");
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--args-fd") && i + 1 < argc) {
			i++;
			continue;
		}
		out[n++] = argv[i];
	}
	for (size_t k = 0; k < got; k += strlen(buf + k) + 1)
		out[n++] = buf + k;
	*out_argc = n;
	return out;
}

static void parse_args(int argc, char **argv)
{
	int i;

	opt.started_fd = -1;
	opt.env = calloc(argc, sizeof(char *));
	if (!opt.env)
		die("out of memory");
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--")) {
			opt.argv = &argv[i + 1];
			break;
		}
		if (!v)
			die("option %s needs a value", a);
		i++;
		if (!strcmp(a, "--init")) {
			char *colon = strchr(v, ':');
			if (!colon)
				die("--init wants PID:STARTTIME");
			*colon = '\0';
			opt.init_pid = (pid_t)parse_ll(v, "init pid");
			opt.init_start = colon + 1;
		} else if (!strcmp(a, "--frozen")) {
			char *colon = strrchr(v, ':');
			if (!colon)
				die("--frozen wants FILE:VALUE");
			*colon = '\0';
			opt.frozen_file = v;
			opt.frozen_value = colon + 1;
		} else if (!strcmp(a, "--ns")) {
			char *colon = strchr(v, ':');
			if (opt.n_ns == MAX_ITEMS)
				retry("too many namespaces");
			if (!colon)
				die("bad --ns %s", v);
			*colon = '\0';
			opt.ns[opt.n_ns].type = ns_type(v);
			opt.ns[opt.n_ns].path = colon + 1;
			opt.n_ns++;
		} else if (!strcmp(a, "--cgroup")) {
			if (opt.n_cgroups == MAX_ITEMS)
				retry("too many cgroups");
			opt.cgroups[opt.n_cgroups++] = v;
		} else if (!strcmp(a, "--oom")) {
			parse_ll(v, "oom_score_adj");
			opt.oom = v;
		} else if (!strcmp(a, "--keyring")) {
			opt.keyring = v;
		} else if (!strcmp(a, "--rlimit")) {
			long long res, soft, hard;
			if (opt.n_rlimits == MAX_ITEMS)
				retry("too many rlimits");
			if (sscanf(v, "%lld:%lld:%lld", &res, &soft, &hard) != 3)
				die("bad --rlimit %s", v);
			opt.rlimits[opt.n_rlimits].resource = (int)res;
			opt.rlimits[opt.n_rlimits].limit.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
			opt.rlimits[opt.n_rlimits].limit.rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
			opt.n_rlimits++;
		} else if (!strcmp(a, "--uid")) {
			opt.uid = (uid_t)parse_ll(v, "uid");
		} else if (!strcmp(a, "--gid")) {
			opt.gid = (gid_t)parse_ll(v, "gid");
		} else if (!strcmp(a, "--groups")) {
			opt.groups = v;
		} else if (!strcmp(a, "--caps")) {
			char *p = (char *)v;
			for (int k = 0; k < 5; k++) {
				char *end;
				opt.caps[k] = parse_hex(p, &end);
				if (errno || end == p || (k < 4 ? *end != ':' : *end != '\0'))
					die("bad --caps %s", v);
				p = end + 1;
			}
		} else if (!strcmp(a, "--nnp")) {
			opt.nnp = !strcmp(v, "1");
		} else if (!strcmp(a, "--nofile-soft-to-hard")) {
			opt.nofile_soft_to_hard = !strcmp(v, "1");
		} else if (!strcmp(a, "--cwd")) {
			opt.cwd = v;
		} else if (!strcmp(a, "--env")) {
			opt.env[opt.n_env++] = (char *)v;
		} else if (!strcmp(a, "--pid-file")) {
			opt.pid_file = v;
		} else if (!strcmp(a, "--started-fd")) {
			opt.started_fd = (int)parse_ll(v, "started fd");
		} else {
			die("unknown option %s", a);
		}
	}
	if (!opt.argv || !opt.argv[0])
		die("no command");
	if (!opt.init_pid || !opt.pid_file || !opt.cwd)
		die("--init, --cwd and --pid-file are required");
}

/* Field 22 of /proc/PID/stat (the start time in clock ticks), as text. */
static int read_start_time(pid_t pid, char *out, size_t size)
{
	char path[64], buf[4096], *p;
	int fd, field;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* after ") " comes field 3 (state); field 22 is 19 fields further */
	p += 2;
	for (field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return -1;
	n = strcspn(p, " ");
	if ((size_t)n >= size)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static void check_running(void)
{
	char start[64];

	if (read_start_time(opt.init_pid, start, sizeof(start)) < 0 || strcmp(start, opt.init_start))
		die("cannot exec in a stopped container");
	if (opt.frozen_file) {
		char buf[64];
		int fd = open(opt.frozen_file, O_RDONLY | O_CLOEXEC);
		ssize_t n;
		if (fd < 0)
			die("open %s: %s", opt.frozen_file, strerror(errno));
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n < 0)
			die("read %s: %s", opt.frozen_file, strerror(errno));
		while (n > 0 && isspace((unsigned char)buf[n - 1]))
			n--;
		buf[n] = '\0';
		/* runc 1.1 waits out a v1 FREEZING, which then mostly ends FROZEN */
		if (!strcmp(buf, opt.frozen_value) ||
		    (!strcmp(opt.frozen_value, "FROZEN") && !strcmp(buf, "FREEZING")))
			die("cannot exec in a paused container");
	}
}

/* ---- the child, from "go" to execve ---------------------------------------------------- */

/* Go's strconv.Atoi as libcontainer/user's parseLine uses it: a bad number is 0. */
static long atoi_go(const char *s, size_t n)
{
	char buf[32], *end;
	long v;

	if (n == 0 || n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || *end || isspace((unsigned char)buf[0]))
		return 0;
	return v;
}

/* Split a trimmed line at ':' into at most max fields; returns the count. */
static int split_fields(char *line, char **fields, size_t *lens, int max)
{
	int n = 0;
	char *p = line;

	while (n < max) {
		char *colon = strchr(p, ':');
		fields[n] = p;
		lens[n] = colon ? (size_t)(colon - p) : strlen(p);
		n++;
		if (!colon)
			break;
		p = colon + 1;
	}
	return n;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* The home directory of the first /etc/passwd entry with our uid (runc: "/" without one). */
static void passwd_home(char *home, size_t size)
{
	FILE *f = fopen("/etc/passwd", "re");
	char *line = NULL;
	size_t cap = 0;

	snprintf(home, size, "/");
	if (!f) {
		if (errno != ENOENT)
			die("unable to setup user: open /etc/passwd: %s", strerror(errno));
		return;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *fields[7];
		size_t lens[7];
		char *t = trim(line);
		int n;

		if (!*t)
			continue;
		n = split_fields(t, fields, lens, 7);
		if ((uid_t)atoi_go(n > 2 ? fields[2] : "", n > 2 ? lens[2] : 0) != opt.uid)
			continue;
		if (n > 5)
			snprintf(home, size, "%.*s", (int)lens[5], fields[5]);
		else
			snprintf(home, size, "%s", "");
		break;
	}
	free(line);
	fclose(f);
}

/* libcontainer/user GetAdditionalGroups: each requested group (a decimal gid here) is the
 * first /etc/group entry named so or with that gid that is not taken yet, else the number. */
static int additional_groups(gid_t *out, int max)
{
	char *list, *tok, *save = NULL;
	int n = 0;

	if (!opt.groups || !*opt.groups)
		return 0;
	list = strdup(opt.groups);
	if (!list)
		die("out of memory");
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		FILE *f = fopen("/etc/group", "re");
		char *line = NULL;
		size_t cap = 0;
		int found = 0;
		long gid = -1;

		while (f && getline(&line, &cap, f) >= 0) {
			char *fields[4], num[32];
			size_t lens[4];
			char *t = trim(line);
			int nf, taken = 0;
			long g;

			if (!*t)
				continue;
			nf = split_fields(t, fields, lens, 4);
			g = atoi_go(nf > 2 ? fields[2] : "", nf > 2 ? lens[2] : 0);
			snprintf(num, sizeof(num), "%ld", g);
			if (!((lens[0] == strlen(tok) && !strncmp(fields[0], tok, lens[0])) ||
			      !strcmp(num, tok)))
				continue;
			for (int k = 0; k < n; k++)
				taken |= out[k] == (gid_t)g;
			if (!taken) {
				gid = g;
				found = 1;
				break;
			}
		}
		free(line);
		if (f)
			fclose(f);
		if (!found) {
			long long v = parse_ll(tok, "additional gid");
			if (v < 0 || v > INT_MAX)
				die("unable to setup user: additional gid %s out of range", tok);
			gid = (long)v;
		}
		if (n == max)
			die("too many additional groups");
		{
			int dup = 0;
			for (int k = 0; k < n; k++)
				dup |= out[k] == (gid_t)gid;
			if (!dup)
				out[n++] = (gid_t)gid;
		}
	}
	free(list);
	return n;
}

static void fix_stdio(void)
{
	struct stat null, st;

	if (stat("/dev/null", &null) < 0)
		die("unable to setup user: stat /dev/null: %s", strerror(errno));
	for (int fd = 0; fd < 3; fd++) {
		if (fstat(fd, &st) < 0)
			die("unable to setup user: fstat %d: %s", fd, strerror(errno));
		if (st.st_uid == opt.uid || st.st_rdev == null.st_rdev)
			continue;
		if (fchown(fd, opt.uid, st.st_gid) < 0 && errno != EINVAL && errno != EPERM &&
		    errno != EROFS)
			die("unable to setup user: chown stdio: %s", strerror(errno));
	}
}

static int read_last_cap(void)
{
	char buf[16];
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 40;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 40;
	buf[n] = '\0';
	return atoi(buf);
}

static void apply_caps(int last)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	uint64_t eff = opt.caps[1], perm = opt.caps[2], inh = opt.caps[3];

	for (int k = 0; k < 2; k++) {
		data[k].effective = (uint32_t)(eff >> (32 * k));
		data[k].permitted = (uint32_t)(perm >> (32 * k));
		data[k].inheritable = (uint32_t)(inh >> (32 * k));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		die("unable to apply caps: %s", strerror(errno));
	/* gocapability: raise what is asked, lower the rest; errors are not reported */
	for (int c = 0; c <= last; c++)
		prctl(PR_CAP_AMBIENT, (opt.caps[4] >> c) & 1 ? PR_CAP_AMBIENT_RAISE : PR_CAP_AMBIENT_LOWER,
		      c, 0, 0);
}

/* Go's exec.LookPath with the command's own PATH (from its environment). */
static const char *look_path(const char *file, char *buf, size_t size)
{
	const char *path = NULL;
	struct stat st;

	if (strchr(file, '/')) {
		if (stat(file, &st) < 0)
			die("exec: \"%s\": stat %s: %s", file, file, strerror(errno));
		if (S_ISDIR(st.st_mode) || !(st.st_mode & 0111))
			die("exec: \"%s\": permission denied", file);
		return file;
	}
	for (int i = 0; i < opt.n_env; i++)
		if (!strncmp(opt.env[i], "PATH=", 5))
			path = opt.env[i] + 5;
	if (path && *path) {
		const char *p = path;
		for (;;) {
			const char *colon = strchr(p, ':');
			size_t len = colon ? (size_t)(colon - p) : strlen(p);
			if (len == 0)
				snprintf(buf, size, "./%s", file);
			else
				snprintf(buf, size, "%.*s/%s", (int)len, p, file);
			if (stat(buf, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111)) {
				if (buf[0] != '/')
					die("exec: \"%s\": cannot run executable found relative to "
					    "current directory", file);
				return buf;
			}
			if (!colon)
				break;
			p = colon + 1;
		}
	}
	die("exec: \"%s\": executable file not found in $PATH", file);
	return NULL;
}

static void set_env(char ***envp)
{
	/* Go's os.Clearenv + os.Setenv for each K=V: a repeated name keeps its first place */
	char **env = calloc(opt.n_env + 2, sizeof(char *));
	int n = 0, home = -1;

	if (!env)
		die("out of memory");
	for (int i = 0; i < opt.n_env; i++) {
		const char *kv = opt.env[i];
		const char *eq = strchr(kv, '=');
		int k;
		if (!eq)
			die("invalid environment variable: missing '='");
		if (eq == kv)
			die("invalid environment variable: name cannot be empty");
		for (k = 0; k < n; k++)
			if (!strncmp(env[k], kv, eq - kv + 1))
				break;
		env[k] = (char *)kv;
		if (k == n)
			n++;
	}
	for (int k = 0; k < n; k++)
		if (!strncmp(env[k], "HOME=", 5))
			home = k;
	if (home < 0 || env[home][5] == '\0') {
		char dir[PATH_MAX], *kv;
		passwd_home(dir, sizeof(dir));
		if (asprintf(&kv, "HOME=%s", dir) < 0)
			die("out of memory");
		if (home < 0)
			home = n++;
		env[home] = kv;
	}
	env[n] = NULL;
	*envp = env;
}

static void child(int go_fd)
{
	char buf[1];
	gid_t groups[1024];
	int ngroups, chdir_later = 0, last;
	char **envp;
	char pathbuf[PATH_MAX];
	const char *file;

	if (read(go_fd, buf, 1) != 1)
		_exit(255); /* the parent failed and said so */

	/* the command starts with default signal dispositions and nothing blocked, as after
	 * runc's Go runtime */
	{
		sigset_t none;
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die("failed to set process as non-dumpable: %s", strerror(errno));
	if (opt.nofile_soft_to_hard) {
		/* what Go >= 1.19 does when runc init starts (runc < 1.1.13 lets it stand) */
		struct rlimit lim;
		if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != lim.rlim_max) {
			lim.rlim_cur = lim.rlim_max;
			setrlimit(RLIMIT_NOFILE, &lim);
		}
	}
	/* stage 1 joined the others; the cgroup namespace only after the cgroup join */
	for (int i = 0; i < opt.n_ns; i++)
		if (opt.ns[i].type == CLONE_NEWCGROUP) {
			if (setns(opt.ns[i].fd, CLONE_NEWCGROUP) < 0)
				die("failed to setns to %s: %s", opt.ns[i].path, strerror(errno));
			close(opt.ns[i].fd);
		}
	if (setsid() < 0)
		die("setsid failed: %s", strerror(errno));
	if (opt.keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, opt.keyring) < 0 &&
	    errno != ENOSYS)
		die("unable to join session keyring: %s", strerror(errno));
	if (opt.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));

	/* finalizeNamespace */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		die("error closing exec fds: %s", strerror(errno));
	if (chdir(opt.cwd) < 0) {
		if (errno != EACCES && errno != EPERM)
			die("chdir to cwd (\"%s\") set in config.json failed: %s", opt.cwd,
			    strerror(errno));
		chdir_later = 1;
	}
	last = cap_last;
	for (int c = 0; c <= last; c++)
		if (!((opt.caps[0] >> c) & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			die("unable to apply bounding set: %s", strerror(errno));
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		die("unable to set keep caps: %s", strerror(errno));
	/* setupUser */
	set_env(&envp);
	ngroups = additional_groups(groups, 1024);
	fix_stdio();
	if (setgroups(ngroups, groups) < 0)
		die("unable to setup user: setgroups: %s", strerror(errno));
	if (setgid(opt.gid) < 0)
		die("unable to setup user: setgid: %s", strerror(errno));
	if (setuid(opt.uid) < 0)
		die("unable to setup user: setuid: %s", strerror(errno));
	if (chdir_later && chdir(opt.cwd) < 0)
		die("chdir to cwd (\"%s\") set in config.json failed: %s", opt.cwd, strerror(errno));
	/* runc's verifyCwd (CVE-2024-21626): a cwd reached through an fd of another mount
	 * namespace has no path from our root */
	{
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) || cwd[0] != '/')
			die("current working directory is outside of container mount namespace root "
			    "-- possible container breakout detected");
	}
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		die("unable to clear keep caps: %s", strerror(errno));
	apply_caps(last);

	file = look_path(opt.argv[0], pathbuf, sizeof(pathbuf));
	/* last handshake, as runc init's procReady/procRun: ready (a NUL byte on the error
	 * pipe), and exec only once stage 0 answers; a stage 0 that is gone (killed by the
	 * daemon's timeout) means no exec, not a command running unsupervised */
	if (write(err_fd, "", 1) != 1 || read(go_fd, buf, 1) != 1)
		_exit(255);
	close(go_fd);
	/* runc >= 1.1.12: nothing but stdio crosses the execve (the error pipe is
	 * close-on-exec) */
	if (err_fd != 3) {
		if (dup3(err_fd, 3, O_CLOEXEC) < 0)
			die("dup error pipe: %s", strerror(errno));
		err_fd = 3;
	}
	if (syscall(SYS_close_range, 4, ~0U, 0) < 0)
		die("error closing exec fds: %s", strerror(errno));
	execve(file, opt.argv, envp);
	die("exec failed: %s", strerror(errno));
}

static int write_pid_file(pid_t pid)
{
	char tmp[PATH_MAX], num[32];
	const char *slash = strrchr(opt.pid_file, '/');
	int fd, len = snprintf(num, sizeof(num), "%d", pid);

	if (slash)
		snprintf(tmp, sizeof(tmp), "%.*s/.%s", (int)(slash - opt.pid_file), opt.pid_file,
			 slash + 1);
	else
		snprintf(tmp, sizeof(tmp), ".%s", opt.pid_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, num, len) != len || close(fd) < 0 || rename(tmp, opt.pid_file) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* Stage 0's child once it is known: a SIGTERM (the daemon's timeout before the pid file)
 * takes it along. */
static volatile pid_t running_child;

static void on_term(int sig)
{
	if (running_child > 0)
		kill(running_child, SIGKILL);
	_exit(128 + sig);
}

/* The command may be running: kill it before failing, so a failure never leaves it. */
static void kill_and_die(pid_t pid, const char *what)
{
	int e = errno;

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	die("%s: %s", what, strerror(e));
}

/* Close every fd >= 3 except those in keep (-1 entries are ignored). */
static void close_except(int *keep, int n)
{
	unsigned int lo = 3;

	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (int i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned int)keep[i] > lo && syscall(SYS_close_range, lo, keep[i] - 1, 0) < 0)
			die("close fds: %s", strerror(errno));
		lo = keep[i] + 1;
	}
	if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
		die("close fds: %s", strerror(errno));
}

/* Stage 1: in the host PID namespace (invisible in the container's /proc), join every
 * namespace but the cgroup one, with mnt before the clone, and clone stage 2 as a child of
 * stage 0. Only the sync pipes and the cgroup namespace fd go with it (no host file). */
static void stage1(int go_rd, int err_wr, int pid_wr)
{
	int keep[MAX_ITEMS + 3] = {go_rd, err_wr, pid_wr};
	pid_t pid;

	err_fd = err_wr;
	for (int i = 0; i < opt.n_ns; i++)
		keep[3 + i] = opt.ns[i].fd;
	close_except(keep, 3 + opt.n_ns);
	for (int i = 0; i < opt.n_ns; i++)
		if (opt.ns[i].type != CLONE_NEWPID && opt.ns[i].type != CLONE_NEWCGROUP &&
		    setns(opt.ns[i].fd, opt.ns[i].type) < 0)
			die("failed to setns to %s: %s", opt.ns[i].path, strerror(errno));
	/* setns(pid) only takes effect for children: after mnt, so that stage 2 is born with
	 * the container's root and cwd */
	for (int i = 0; i < opt.n_ns; i++)
		if (opt.ns[i].type == CLONE_NEWPID && setns(opt.ns[i].fd, CLONE_NEWPID) < 0)
			die("failed to setns to %s: %s", opt.ns[i].path, strerror(errno));
	for (int i = 0; i < opt.n_ns; i++)
		if (opt.ns[i].type != CLONE_NEWCGROUP)
			close(opt.ns[i].fd);
	pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		die("clone: %s", strerror(errno));
	if (pid == 0) {
		close(pid_wr);
		child(go_rd);
	}
	if (write(pid_wr, &pid, sizeof(pid)) != sizeof(pid))
		_exit(255); /* stage 2 then reads EOF on go and exits */
	_exit(0);
}

int main(int argc, char **argv)
{
	int go[2], errp[2], pidp[2], status;
	pid_t pid, s1;
	char msg[4096];
	ssize_t n;

	/* first of all, as runc's nsexec: nothing of ours can be ptrace-read by a lesser
	 * process (fork keeps it; stage 2's execve resets it) */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die("failed to set process as non-dumpable: %s", strerror(errno));
	prctl(PR_SET_NAME, "pinnace-exec", 0, 0, 0); /* not the memfd's "N" */
	/* an inherited SIG_IGN would let the kernel reap stage 2 by itself and free its pid
	 * before stage 0 writes it into the container's cgroups */
	signal(SIGCHLD, SIG_DFL);
	{
		int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		int seals = self < 0 ? -1 : fcntl(self, F_GET_SEALS);
		if (self >= 0)
			close(self);
		if (seals < 0 || (seals & SEALS) != SEALS)
			die("not running from a sealed memfd (the daemon starts this helper)");
	}
	argv = args_from_fd(argc, argv, &argc);
	parse_args(argc, argv);
	for (int i = 0; i < opt.n_ns; i++) {
		opt.ns[i].fd = open(opt.ns[i].path, O_RDONLY | O_CLOEXEC);
		if (opt.ns[i].fd < 0)
			retry("open namespace %s: %s", opt.ns[i].path, strerror(errno));
	}
	/* the namespaces are the init's only if it is still the same process */
	check_running();
	/* host facts, read here rather than inside the container, which could over-mount them */
	cap_last = read_last_cap();
	if (opt.oom) {
		/* inherited by stage 1 and 2, as from nsexec's stage 0 */
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, opt.oom, strlen(opt.oom)) < 0)
			retry("failed to update /proc/self/oom_score_adj: %s", strerror(errno));
		close(fd);
	}
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(pidp, O_CLOEXEC) < 0)
		retry("pipe: %s", strerror(errno));
	s1 = fork();
	if (s1 < 0)
		retry("fork: %s", strerror(errno));
	if (s1 == 0)
		stage1(go[0], errp[1], pidp[1]);
	close(go[0]);
	close(errp[1]);
	close(pidp[1]);
	for (int i = 0; i < opt.n_ns; i++)
		close(opt.ns[i].fd);
	while (waitpid(s1, &status, 0) < 0)
		if (errno != EINTR)
			retry("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    read(pidp[0], &pid, sizeof(pid)) != sizeof(pid)) {
		/* stage 1 said why on the error pipe (stage 2, if any, sees EOF on go) */
		close(go[1]);
		n = read(errp[0], msg, sizeof(msg) - 1);
		msg[n > 0 ? n : 0] = '\0';
		dprintf(2, "pinnace-exec failed: %s\n", n > 0 ? msg : "namespace setup failed");
		return RETRY;
	}
	close(pidp[0]);

	/* from here a failure must not leave the child behind */
	running_child = pid;
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_term;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		signal(SIGPIPE, SIG_IGN); /* a dead child or daemon is an error, not a signal */
	}
	{
		char path[PATH_MAX], num[32];
		int len = snprintf(num, sizeof(num), "%d", pid);
		for (int i = 0; i < opt.n_cgroups; i++) {
			int fd;
			snprintf(path, sizeof(path), "%s/cgroup.procs", opt.cgroups[i]);
			fd = open(path, O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, num, len) != len) {
				int e = errno;
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				errno = e;
				retry("error adding pid %d to cgroups: %s: %s", pid, path, strerror(errno));
			}
			close(fd);
		}
		for (int i = 0; i < opt.n_rlimits; i++) {
			if (prlimit(pid, opt.rlimits[i].resource, &opt.rlimits[i].limit, NULL) < 0) {
				int e = errno;
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				retry("error setting rlimits for process: %s", strerror(e));
			}
		}
	}
	if (write(go[1], "g", 1) != 1)
		kill_and_die(pid, "sync with child");

	/* the child's error, or its "ready" (a NUL byte) */
	do
		n = read(errp[0], msg, sizeof(msg) - 1);
	while (n < 0 && errno == EINTR);
	if (n == 1 && msg[0] == '\0') {
		if (write(go[1], "x", 1) != 1)
			kill_and_die(pid, "sync with child");
		/* EOF without a message: the execve happened */
		do
			n = read(errp[0], msg, sizeof(msg) - 1);
		while (n < 0 && errno == EINTR);
	} else if (n == 0) {
		n = snprintf(msg, sizeof(msg), "the process ended before its exec");
	}
	close(go[1]);
	close(errp[0]);
	if (n != 0) {
		msg[n > 0 ? n : 0] = '\0';
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		dprintf(2, "pinnace-exec failed: unable to start container process: %s\n",
			n > 0 ? msg : strerror(errno));
		return 255;
	}
	if (write_pid_file(pid) < 0)
		kill_and_die(pid, "failed to write pid file");
	if (opt.started_fd >= 0) {
		/* the daemon learns of the start from this byte, and leaves the pid file to us */
		if (write(opt.started_fd, "1", 1) != 1) {
			unlink(opt.pid_file);
			kill_and_die(pid, "write started fd");
		}
		close(opt.started_fd);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (opt.started_fd >= 0)
		unlink(opt.pid_file);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
