/*
 * replay_main.c — runs LLVMFuzzerTestOneInput() over files without
 * libFuzzer, so any compiler (and ctest in every build) can replay the seed
 * corpus and crash reproducers.
 *
 * usage: fuzz_reply_replay FILE|DIR ...   (directories: every regular file)
 * Returns 0 when every input ran; a harness check failure aborts.
 * Diagnostics: unreadable paths are reported and make the exit status 1.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	FILE *fp;
	uint8_t *buf;
	long n;

	if ((fp = fopen(path, "rb")) == NULL || fseek(fp, 0, SEEK_END) != 0 ||
	    (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
		perror(path);
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	/* +1: malloc(0) may return NULL */
	if ((buf = malloc((size_t)n + 1)) == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		perror(path);
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	struct dirent *de;
	struct stat st;
	char path[4096];
	DIR *d;
	int i, files = 0, rc = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			rc = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			rc |= replay_file(argv[i]) != 0;
			files++;
			continue;
		}
		if ((d = opendir(argv[i])) == NULL) {
			perror(argv[i]);
			rc = 1;
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			rc |= replay_file(path) != 0;
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", files);
	/* an empty corpus would make the test pass vacuously */
	return rc != 0 || files == 0;
}
