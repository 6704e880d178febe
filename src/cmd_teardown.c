/* dmrescue teardown: bring a host whose dockerd died to the offline state
 * the other commands need (teardown.h has the steps and the refusals). */
#include "config.h"
#include "cli.h"
#include "docker/state.h"
#include "guard.h"
#include "live.h"
#include "teardown.h"
#include "util/jsonc.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define TEARDOWN_SCHEMA "dmrescue.teardown/1"

static void teardown_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue teardown [options]\n"
	      "\n"
	      "After dockerd died (killed, hung and killed), take down what it left\n"
	      "active so the offline commands can run: unmount what is mounted under\n"
	      "ROOT/devicemapper/mnt/ (lazily when busy), remove Docker's thin devices\n"
	      "(cancelling deferred removals first) and its pool, and detach the loop\n"
	      "devices of the data and metadata files. Each step is printed. Nothing is\n"
	      "written to the pool or to Docker's files.\n"
	      "\n"
	      "Options:\n"
	      " -n, --dry-run   print the steps, do nothing\n"
	      " -y, --yes       do not ask\n"
	      "     --json      the steps and what became of them (schema " TEARDOWN_SCHEMA ")\n"
	      "\n"
	      "Refuses while dockerd (or podman...) runs, and when a device it would have\n"
	      "to remove is not Docker's.\n"
	      "\n"
	      "Exit status: 0 done (or nothing active), 3 cannot look, 4 a step failed,\n"
	      "5 refused, 64 usage.\n", out);
}

struct result {
	int state; /* 0 planned, 1 done, -1 failed */
	int lazily;
	char error[sizeof(((struct dmr_err *)0)->msg)];
};

static void print_json(const struct td_plan *p, const struct result *res, const char *state, const char *why,
		       const struct dmr_cli *cli)
{
	json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(TEARDOWN_SCHEMA));
	json_object_object_add(root, "root", json_object_new_string(cli->root));
	json_object_object_add(root, "state", json_object_new_string(state));
	if (why)
		json_object_object_add(root, "error", json_object_new_string(why));
	json_object *steps = json_object_new_array();
	for (size_t i = 0; i < p->n; i++) {
		json_object *o = json_object_new_object();
		static const char *const kinds[] = { "unmount", "cancel-deferred-remove", "remove-thin", "remove-pool",
						     "detach-loop" };
		json_object_object_add(o, "action", json_object_new_string(kinds[p->v[i].kind]));
		json_object_object_add(o, "object", json_object_new_string(p->v[i].object));
		const char *st = res[i].state > 0 ? "done" : res[i].state < 0 ? "failed" : "planned";
		json_object_object_add(o, "state", json_object_new_string(st));
		if (res[i].lazily)
			json_object_object_add(o, "lazily", json_object_new_boolean(1));
		if (res[i].error[0])
			json_object_object_add(o, "error", json_object_new_string(res[i].error));
		json_object_array_add(steps, o);
	}
	json_object_object_add(root, "steps", steps);
	dmr_cli_put_json(root);
}

/* What is live now, as findings. Returns an exit code. */
static int look(struct dmr_cli *cli, const char *prefix, struct live_finding **f, size_t *n)
{
	struct dmr_err err = { 0 };
	struct live_ctx lc = { .sysroot = dmr_guard_sysroot() };
	if (live_check(&lc, cli->root, dmr_cli_metadata_path(cli), dmr_cli_data_path(cli), prefix, f, n, &err)) {
		dmr_cli_error(cli, "cannot tell what is live: %s", err.msg);
		return DMR_EXIT_INPUT;
	}
	return DMR_EXIT_OK;
}

int cmd_teardown(struct dmr_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "dry-run", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	int dry = 0, yes = 0, ch;
	while ((ch = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "ny", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(cli, ch, optarg, teardown_usage))
			continue;
		switch (ch) {
		case 'n': dry = 1; break;
		case 'y': yes = 1; break;
		default: return dmr_cli_bad_option(cli, "teardown", ch, argv);
		}
	}
	if (optind < argc)
		return dmr_cli_usage_error(cli, "teardown", "unexpected argument '%s'", argv[optind]);

	struct dk_state st;
	struct dmr_err err = { 0 };
	memset(&st, 0, sizeof(st));
	if (dk_state_read(cli->root, &st, &err))
		return dmr_cli_fail(cli, &err);
	if (st.layout == DK_LAYOUT_NONE || !st.prefix) {
		dmr_cli_error(cli, "%s: no devicemapper driver home here: nothing of Docker's to take down", cli->root);
		dk_state_free(&st);
		return DMR_EXIT_USAGE;
	}
	char prefix[256];
	snprintf(prefix, sizeof(prefix), "%s", st.prefix);
	dk_state_free(&st);

	struct live_finding *f = NULL;
	size_t n = 0;
	struct td_plan p;
	struct result *res = NULL;
	int lock = -1, rc = look(cli, prefix, &f, &n);
	if (rc != DMR_EXIT_OK)
		return rc;
	if (td_plan_build(f, n, &p, &err)) {
		free(f);
		return dmr_cli_fail(cli, &err);
	}
	free(f);
	f = NULL;
	res = calloc(p.n ? p.n : 1, sizeof(*res));
	if (!res) {
		td_plan_free(&p);
		dmr_cli_error(cli, "out of memory");
		return DMR_EXIT_INPUT;
	}
	if (p.refused) {
		if (cli->json)
			print_json(&p, res, "refused", p.refusal, cli);
		dmr_cli_error(cli, "%s", p.refusal);
		rc = DMR_EXIT_REFUSED;
		goto out;
	}
	if (!cli->json && !cli->quiet) {
		printf("Teardown of %s (pool %s-pool)\n", cli->root, prefix);
		if (!p.n)
			printf("  nothing of it is active\n");
		for (size_t i = 0; i < p.n; i++)
			printf("  %s %s\n", td_kind_name(p.v[i].kind), p.v[i].object);
	}
	if (!p.n || dry) {
		if (cli->json)
			print_json(&p, res, p.n ? "planned" : "nothing-to-do", NULL, cli);
		rc = dmr_cli_finish_stdout(cli, DMR_EXIT_OK);
		goto out;
	}
	if ((rc = dmr_guard_lock(cli, &lock)) != DMR_EXIT_OK ||
	    (rc = dmr_guard_confirm(cli, yes, "Take these down?")) != DMR_EXIT_OK)
		goto out;
	fflush(stdout);
	for (size_t i = 0; i < p.n; i++) {
		struct dmr_err e = { 0 };
		if (td_run_step(&td_real_ops, NULL, &p.v[i], &res[i].lazily, &e)) {
			res[i].state = -1;
			snprintf(res[i].error, sizeof(res[i].error), "%s", e.msg);
			if (cli->json)
				print_json(&p, res, "failed", e.msg, cli);
			dmr_cli_error(cli, "%s", e.msg);
			dmr_cli_error(cli, "stopped after %zu of %zu steps: fix the cause and run teardown again", i, p.n);
			rc = DMR_EXIT_OUTPUT;
			goto out;
		}
		res[i].state = 1;
		if (!cli->json && !cli->quiet)
			printf("%s: %s%s\n", p.v[i].object,
			       p.v[i].kind == TD_UNMOUNT ? "unmounted" : p.v[i].kind == TD_CANCEL_DEFERRED
			       ? "deferred removal cancelled" : p.v[i].kind == TD_DETACH_LOOP ? "detached" : "removed",
			       res[i].lazily ? " (lazily: it was busy)" : "");
	}
	/* What is left: a lazily unmounted tree stays until its last user
	 * goes, which does not keep the pool (the devices are gone). */
	rc = look(cli, prefix, &f, &n);
	if (rc == DMR_EXIT_OK) {
		for (size_t i = 0; i < n; i++)
			dmr_cli_error(cli, "still active: %s", f[i].msg);
		if (cli->json)
			print_json(&p, res, n ? "failed" : "done", n ? "something is still active" : NULL, cli);
		else if (!cli->quiet && !n)
			printf("Nothing of the pool is active any more: the offline commands can run.\n");
		rc = n ? DMR_EXIT_OUTPUT : DMR_EXIT_OK;
	}
	free(f);
	rc = dmr_cli_finish_stdout(cli, rc);
out:
	if (lock >= 0)
		live_unlock(lock);
	free(res);
	td_plan_free(&p);
	return rc;
}
