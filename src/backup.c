#include "config.h"
/* placeholder: being written */
extern int dmr_placeholder_backup;
