/* The classification rules and what each class means: one table, applied
 * in order, first match wins. The readers only report facts. */
#include "config.h"
#include "inventory.h"

const struct inv_rule inv_rules[] = {
	/* Docker itself will act on these at its next start. */
	{ INV_OPEN_TRANSACTION, INV_F_TXN_OPEN, 0 },
	{ INV_BAD_FILE, INV_F_FILE | INV_F_FILE_INVALID, 0 },
	/* One side missing. */
	{ INV_HOLLOW_FILE, INV_F_FILE, INV_F_POOL },
	{ INV_POOL_ORPHAN, INV_F_POOL, INV_F_FILE },
	{ INV_TRANSIENT, INV_F_TRANSIENT, 0 },
	{ INV_DEFERRED_DELETED, INV_F_DELETED, 0 },
	{ INV_BASE, INV_F_BASE, 0 },
	/* Owned, or half-owned. */
	{ INV_HALF_REMOVED_LAYER, INV_F_LAYER_REMOVING, INV_F_LAYER | INV_F_MOUNT },
	{ INV_DEAD_CONTAINER, INV_F_MOUNT | INV_F_CONTAINER | INV_F_CONTAINER_DEAD, 0 },
	{ INV_CONTAINER_INIT, INV_F_MOUNT | INV_F_MOUNT_INIT | INV_F_CONTAINER, 0 },
	{ INV_CONTAINER, INV_F_MOUNT | INV_F_CONTAINER, 0 },
	{ INV_ORPHAN_MOUNT, INV_F_MOUNT, INV_F_CONTAINER },
	{ INV_IMAGE_LAYER, INV_F_LAYER | INV_F_LAYER_PINNED, 0 },
	/* BuildKit holds its own reference to a layer it registered (the
	 * cache-id is its snapshot key): not unreferenced. */
	{ INV_UNREFERENCED_LAYER, INV_F_LAYER, INV_F_LAYER_PINNED | INV_F_BUILDKIT },
	{ INV_BUILDKIT, INV_F_BUILDKIT, 0 },
	/* File and device, and nothing refers to the hash. */
	{ INV_DRIVER_ORPHAN, INV_F_FILE | INV_F_POOL, 0 },
};
const size_t inv_nr_rules = sizeof(inv_rules) / sizeof(inv_rules[0]);

enum inv_class inv_classify(unsigned facts)
{
	for (size_t i = 0; i < inv_nr_rules; i++)
		if ((facts & inv_rules[i].need) == inv_rules[i].need && !(facts & inv_rules[i].reject))
			return inv_rules[i].cls;
	/* Nothing at all is known: a pool device with no file matched above,
	 * so this is unreachable for real items. */
	return INV_DRIVER_ORPHAN;
}

static const struct {
	const char *name, *title, *meaning, *action;
	int leftover;
} classes[INV_CLASS_COUNT] = {
	[INV_BASE] = { "base", "Base device",
		       "The device every image layer is a snapshot of.",
		       "Keep it.", 0 },
	[INV_IMAGE_LAYER] = { "image-layer", "Image layers",
			      "A read-only layer of an image or of a container's image.",
			      "Keep it; 'docker rmi' removes it with its images.", 0 },
	[INV_CONTAINER] = { "container", "Container layers",
			    "The read-write layer of a container.",
			    "Keep it; 'docker rm' removes it with its container.", 0 },
	[INV_CONTAINER_INIT] = { "container-init", "Container init layers",
				 "The -init layer Docker creates under a container's read-write layer.",
				 "Keep it; it goes with its container.", 0 },
	[INV_BUILDKIT] = { "buildkit", "BuildKit snapshots",
			   "A device BuildKit made, tracked in buildkit/snapshots.db.",
			   "Keep it; 'docker builder prune' removes unused ones.", 0 },
	[INV_OPEN_TRANSACTION] = { "open-transaction", "Open transaction",
				   "transaction-metadata is ahead of the pool's transaction id: at its next start "
				   "Docker rolls it back, deleting this device and its metadata file.",
				   "Let Docker roll it back, or remove it with 'dmrescue clean'.", 1 },
	[INV_BAD_FILE] = { "bad-file", "Unreadable metadata files",
			   "A file in devicemapper/metadata/ that Docker cannot load: the daemon will not start.",
			   "Move it out of devicemapper/metadata/ (dmrescue clean does, with a backup).", 1 },
	[INV_HOLLOW_FILE] = { "hollow-file", "Hollow files",
			      "A Docker metadata file whose thin device is not in the pool: activating it fails.",
			      "Remove the file and whatever refers to it (dmrescue clean --hollow-files).", 1 },
	[INV_POOL_ORPHAN] = { "pool-orphan", "Pool orphans",
			      "A thin device in the pool with no Docker metadata file: Docker never frees it.",
			      "Remove it from the pool (dmrescue clean).", 1 },
	[INV_DEFERRED_DELETED] = { "deferred-deleted", "Deferred-deleted devices",
				   "Marked \"deleted\": Docker gave up deleting it while it was busy and retries "
				   "only while deferred deletion is enabled.",
				   "Remove it (dmrescue clean).", 1 },
	[INV_HALF_REMOVED_LAYER] = { "half-removed-layer", "Half-removed layers",
				     "The layer's directory was renamed *-removing: its deletion was interrupted.",
				     "Finish the removal (dmrescue clean).", 1 },
	[INV_DEAD_CONTAINER] = { "dead-container", "Dead containers",
				 "A container left Dead (or mid-removal), usually after 'Device is Busy'.",
				 "Remove it with 'docker rm -f', or offline with 'dmrescue clean --dead-containers'.", 1 },
	[INV_ORPHAN_MOUNT] = { "orphan-mount", "Mounts without a container",
			       "A read-write layer in layerdb/mounts whose container is gone (or a builder's).",
			       "Remove it offline if no build is running (dmrescue clean --driver-orphans).", 1 },
	[INV_UNREFERENCED_LAYER] = { "unreferenced-layer", "Unreferenced layers",
				     "An image layer that no image and no container uses; Docker never prunes it.",
				     "Remove it (dmrescue clean --unreferenced-layers).", 1 },
	[INV_DRIVER_ORPHAN] = { "driver-orphan", "Driver orphans",
				"A metadata file and a pool device that no layer, container or BuildKit entry refers to.",
				"Remove it (dmrescue clean --driver-orphans).", 1 },
	[INV_TRANSIENT] = { "transient", "Transient files",
			    "A temporary file or directory an interrupted operation left behind.",
			    "Remove it (dmrescue clean).", 1 },
};

const char *inv_class_name(enum inv_class c) { return c < INV_CLASS_COUNT ? classes[c].name : "?"; }
const char *inv_class_title(enum inv_class c) { return c < INV_CLASS_COUNT ? classes[c].title : "?"; }
const char *inv_class_meaning(enum inv_class c) { return c < INV_CLASS_COUNT ? classes[c].meaning : "?"; }
const char *inv_class_action(enum inv_class c) { return c < INV_CLASS_COUNT ? classes[c].action : "?"; }
int inv_class_is_leftover(enum inv_class c) { return c < INV_CLASS_COUNT && classes[c].leftover; }
