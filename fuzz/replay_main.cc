// Runs a libFuzzer target over files and directories given on the command line, so the
// checked-in corpora are ordinary tests under any compiler (and any sanitizer build).
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 0;
}

int main(int argc, char **argv) {
  int files = 0, errors = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      std::fprintf(stderr, "no such corpus: %s\n", argv[i]);
      return 1;
    }
    if (S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      while (struct dirent *e = d ? readdir(d) : nullptr) {
        if (e->d_name[0] == '.') continue;
        errors += run_file(std::string(argv[i]) + "/" + e->d_name);
        ++files;
      }
      if (d) closedir(d);
    } else {
      errors += run_file(argv[i]);
      ++files;
    }
  }
  // Also the degenerate inputs every parser must survive.
  LLVMFuzzerTestOneInput(nullptr, 0);
  const uint8_t zero = 0;
  LLVMFuzzerTestOneInput(&zero, 1);
  std::printf("replayed %d corpus files\n", files);
  return errors == 0 && files > 0 ? 0 : 1;
}
