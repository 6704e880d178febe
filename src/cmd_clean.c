#include "config.h"
#include "cli.h"
/* placeholder: being written */
int cmd_clean(struct dmr_cli *cli, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	dmr_cli_error(cli, "clean: not built yet");
	return DMR_EXIT_USAGE;
}
