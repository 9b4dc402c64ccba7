# Generated from workloads.yaml by generate.py: do not edit.
#
#   docker buildx bake                      build every image (group "default")
#   docker buildx bake cpu                  one category: io, cpu or gpu
#   docker buildx bake cpu-3 --push         one variant, pushed
#   REGISTRY=ghcr.io NAMESPACE=org VERSION=1.0.0 docker buildx bake --push
#   docker buildx bake --file docker-bake.hcl --file docker-up.env --push io cpu
#                                           on the machine scripts/docker-up provisioned
#
# Images are <REGISTRY>/<NAMESPACE>/cloudai-<category>-intensive:<N>, by default in a registry on
# this machine (localhost:5000/cloudai): nothing is tagged for a namespace this project does not
# own. Works with buildx 0.13: fully expanded targets, no matrix.

variable "REGISTRY" {
  # A registry on this machine (scripts/docker-up starts one); CI pushes to ghcr.io/<owner>.
  default = "localhost:5000"
}
variable "NAMESPACE" {
  # Empty: DOCKER_USERNAME (the earlier scripts' variable), else "cloudai".
  default = ""
}
variable "DOCKER_USERNAME" {
  default = ""
}
variable "VERSION" {
  # Set it to add immutable tags: cloudai-cpu-intensive:3-1.0.0 beside :3 (and :latest-1.0.0
  # beside :latest).
  default = ""
}
variable "PLATFORMS" {
  # Comma-separated: build only these of each image's platforms (scripts/docker-up writes
  # linux/amd64 where it set up no arm64 emulation); empty, or none of an image's: every
  # platform the manifest gives it.
  default = ""
}
# Pinned by digest (the python:3.12-slim index, both platforms) so that a rebuild takes the same
# Python and Debian; override it to move on (docker buildx imagetools inspect python:3.12-slim).
variable "BASE_IMAGE" {
  default = "python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea"
}
variable "TORCH_SPEC" {
  default = "torch"
}
variable "TORCH_INDEX_URL" {
  # e.g. https://download.pytorch.org/whl/cu124; empty: PyPI (and the wheelhouse).
  default = ""
}
variable "WHEELHOUSE" {
  # A folder of wheels the GPU images install torch from first (air-gapped, CPU-only tests).
  default = "images/wheelhouse"
}
variable "CACHE_REGISTRY" {
  # A repository for the build cache, e.g. ghcr.io/org/cloudai-cache; empty: no registry cache.
  default = ""
}
variable "SBOM" {
  default = true
}
variable "PROVENANCE" {
  default = true
}
variable "PIP_CERT" {
  # A CA bundle for pip behind a TLS-intercepting proxy, passed as a build secret (pip's own
  # variable name, so a machine already set up for pip builds as it installs).
  default = ""
}
variable "PIP_CONFIG_FILE" {
  # A pip.conf (index, credentials), passed as a build secret (pip's own variable name).
  default = ""
}
variable "SOURCE_URL" {
  default = "https://github.com/cloudai-workloads/cloudai-workloads"
}
variable "REVISION" {
  default = ""
}
variable "CREATED" {
  # RFC 3339; empty: the time of the build.
  default = ""
}

function "namespace" {
  params = []
  result = NAMESPACE != "" ? NAMESPACE : (DOCKER_USERNAME != "" ? DOCKER_USERNAME : "cloudai")
}

function "listed" {
  params = [wanted]
  result = [
    for platform in wanted : platform if contains(split(",", replace(PLATFORMS, " ", "")), platform)
  ]
}

# An image's platforms, narrowed to PLATFORMS; all of them when PLATFORMS lists none of them.
function "platforms" {
  params = [wanted]
  result = length(listed(wanted)) > 0 ? listed(wanted) : wanted
}

function "repository" {
  params = [category]
  result = "${REGISTRY}/${namespace()}/cloudai-${category}-intensive"
}

function "tags" {
  params = [category, tag]
  result = concat(
    ["${repository(category)}:${tag}"],
    VERSION != "" ? ["${repository(category)}:${tag}-${VERSION}"] : []
  )
}

function "cache_from" {
  params = [name]
  result = CACHE_REGISTRY != "" ? ["type=registry,ref=${CACHE_REGISTRY}:${name}"] : []
}

function "cache_to" {
  params = [name]
  result = CACHE_REGISTRY != "" ? ["type=registry,ref=${CACHE_REGISTRY}:${name},mode=max"] : []
}

group "default" {
  targets = ["io", "cpu", "gpu"]
}

group "io" {
  targets = ["io-1", "io-2", "io-3", "io-4", "io-5", "io-6", "io-7"]
}

group "cpu" {
  targets = ["cpu-1", "cpu-2", "cpu-3", "cpu-4", "cpu-5", "cpu-6", "cpu-7"]
}

group "gpu" {
  targets = ["gpu-1", "gpu-2", "gpu-3", "gpu-4", "gpu-5", "gpu-6"]
}

target "_common" {
  context = "."
  args = {
    BASE_IMAGE = BASE_IMAGE
  }
  secret = concat(
    PIP_CERT != "" ? ["id=pip_cert,src=${PIP_CERT}"] : [],
    PIP_CONFIG_FILE != "" ? ["id=pip_conf,src=${PIP_CONFIG_FILE}"] : []
  )
  attest = [
    "type=sbom,disabled=${!SBOM}",
    "type=provenance,mode=max,disabled=${!PROVENANCE}",
  ]
  labels = {
    "org.opencontainers.image.source"    = SOURCE_URL
    "org.opencontainers.image.revision"  = REVISION
    "org.opencontainers.image.created"   = CREATED != "" ? CREATED : timestamp()
    "org.opencontainers.image.version"   = VERSION
    "org.opencontainers.image.licenses"  = "Apache-2.0"
    "org.opencontainers.image.vendor"    = "cloudai-workloads"
    "org.opencontainers.image.base.name" = BASE_IMAGE
  }
}

# Bases: built as contexts of the images, never pushed on their own.
target "base" {
  inherits   = ["_common"]
  dockerfile = "images/base/Dockerfile"
  platforms  = platforms(["linux/amd64", "linux/arm64"])
  cache-from = cache_from("base")
  cache-to   = cache_to("base")
}

target "base-gpu" {
  inherits   = ["_common"]
  dockerfile = "images/base-gpu/Dockerfile"
  contexts = {
    base   = "target:base"
    wheels = WHEELHOUSE
  }
  args = {
    BASE_IMAGE      = BASE_IMAGE
    TORCH_SPEC      = TORCH_SPEC
    TORCH_INDEX_URL = TORCH_INDEX_URL
  }
  platforms  = platforms(["linux/amd64"])
  cache-from = cache_from("base-gpu")
  cache-to   = cache_to("base-gpu")
}

target "io-1" {
  inherits   = ["_common"]
  dockerfile = "images/io-1/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("io", "1"),
    tags("io", "latest")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-io-intensive:1"
    "org.opencontainers.image.description" = "io-1: File writing and reading with dynamic memory growth. Writes files of random data while holding a growing set of buffers, reads them back sequentially and by random seeks, and checks every byte."
    "org.cloudai.workload.id"              = "io-1"
    "org.cloudai.workload.category"        = "io"
    "org.cloudai.workload.task-type"       = "memory-heavy"
    "org.cloudai.workload.launcher"        = "io_process_1.py"
    "org.cloudai.envelope.cpus"            = "1"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "2g"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "120"
    "org.cloudai.duration.max-seconds"     = "600"
    "org.cloudai.primary-metric"           = "write_mb_s (MB/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("io-1")
  cache-to   = cache_to("io-1")
}

target "io-2" {
  inherits   = ["_common"]
  dockerfile = "images/io-2/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("io", "2")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-io-intensive:2"
    "org.opencontainers.image.description" = "io-2: Database-like operations with random access (SQLite). Inserts rows into SQLite in batched transactions, then runs random point, range and aggregate queries and updates."
    "org.cloudai.workload.id"              = "io-2"
    "org.cloudai.workload.category"        = "io"
    "org.cloudai.workload.task-type"       = "mixed"
    "org.cloudai.workload.launcher"        = "io_process_2.py"
    "org.cloudai.envelope.cpus"            = "1"
    "org.cloudai.envelope.memory"          = "512m"
    "org.cloudai.envelope.disk"            = "1g"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "120"
    "org.cloudai.duration.max-seconds"     = "600"
    "org.cloudai.primary-metric"           = "transactions_per_s (tx/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("io-2")
  cache-to   = cache_to("io-2")
}

target "io-3" {
  inherits   = ["_common"]
  dockerfile = "images/io-3/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("io", "3")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-io-intensive:3"
    "org.opencontainers.image.description" = "io-3: Log processing and text analysis. Generates realistic log files, re-reads and analyses them (counts per level and service, top messages) and writes a report."
    "org.cloudai.workload.id"              = "io-3"
    "org.cloudai.workload.category"        = "io"
    "org.cloudai.workload.task-type"       = "cpu-light"
    "org.cloudai.workload.launcher"        = "io_process_3.py"
    "org.cloudai.envelope.cpus"            = "1"
    "org.cloudai.envelope.memory"          = "512m"
    "org.cloudai.envelope.disk"            = "1g"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "120"
    "org.cloudai.duration.max-seconds"     = "600"
    "org.cloudai.primary-metric"           = "lines_per_s (lines/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("io-3")
  cache-to   = cache_to("io-3")
}

target "io-4" {
  inherits   = ["_common"]
  dockerfile = "images/io-4/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("io", "4")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-io-intensive:4"
    "org.opencontainers.image.description" = "io-4: Network-like I/O with buffering. Streams packets of 64-1500 bytes through loopback sockets between a buffered producer and consumer, captures them to a file and re-parses it."
    "org.cloudai.workload.id"              = "io-4"
    "org.cloudai.workload.category"        = "io"
    "org.cloudai.workload.task-type"       = "cpu-light"
    "org.cloudai.workload.launcher"        = "io_process_4.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "512m"
    "org.cloudai.envelope.disk"            = "512m"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "120"
    "org.cloudai.duration.max-seconds"     = "600"
    "org.cloudai.primary-metric"           = "messages_per_s (messages/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("io-4")
  cache-to   = cache_to("io-4")
}

target "io-5" {
  inherits   = ["_common"]
  dockerfile = "images/io-5/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("io", "5")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-io-intensive:5"
    "org.opencontainers.image.description" = "io-5: Image/binary data processing with compression. Encodes, decodes, resizes and filters images and binary blobs with Pillow, and compresses and decompresses them in streams."
    "org.cloudai.workload.id"              = "io-5"
    "org.cloudai.workload.category"        = "io"
    "org.cloudai.workload.task-type"       = "mixed"
    "org.cloudai.workload.launcher"        = "io_process_5.py"
    "org.cloudai.envelope.cpus"            = "1"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "1g"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "120"
    "org.cloudai.duration.max-seconds"     = "600"
    "org.cloudai.primary-metric"           = "input_mb_s (MB/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("io-5")
  cache-to   = cache_to("io-5")
}

target "io-6" {
  inherits   = ["_common"]
  dockerfile = "images/io-6/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("io", "6")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-io-intensive:6"
    "org.opencontainers.image.description" = "io-6: Sequential and random file access mix. Sequential reads, random seek-and-read of 4 KiB-1 MiB blocks and memory-mapped random reads and in-place writes over mixed files."
    "org.cloudai.workload.id"              = "io-6"
    "org.cloudai.workload.category"        = "io"
    "org.cloudai.workload.task-type"       = "mixed"
    "org.cloudai.workload.launcher"        = "io_process_6.py"
    "org.cloudai.envelope.cpus"            = "1"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "2g"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "120"
    "org.cloudai.duration.max-seconds"     = "600"
    "org.cloudai.primary-metric"           = "sequential_read_mb_s (MB/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("io-6")
  cache-to   = cache_to("io-6")
}

target "io-7" {
  inherits   = ["_common"]
  dockerfile = "images/io-7/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("io", "7")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-io-intensive:7"
    "org.opencontainers.image.description" = "io-7: CSV data processing with aggregations. Writes CSV files of sales-like rows, reads them back, aggregates by category, region, status and customer, and writes a summary and a top-N."
    "org.cloudai.workload.id"              = "io-7"
    "org.cloudai.workload.category"        = "io"
    "org.cloudai.workload.task-type"       = "cpu-light"
    "org.cloudai.workload.launcher"        = "io_process_7.py"
    "org.cloudai.envelope.cpus"            = "1"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "1g"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "120"
    "org.cloudai.duration.max-seconds"     = "600"
    "org.cloudai.primary-metric"           = "rows_per_s (rows/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("io-7")
  cache-to   = cache_to("io-7")
}

target "cpu-1" {
  inherits   = ["_common"]
  dockerfile = "images/cpu-1/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("cpu", "1"),
    tags("cpu", "latest")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-cpu-intensive:1"
    "org.opencontainers.image.description" = "cpu-1: Matrix operations and linear algebra. Matrix products of growing size, symmetric eigenvalues, determinants, SVD and QR, checked against float64 recomputation and reconstruction."
    "org.cloudai.workload.id"              = "cpu-1"
    "org.cloudai.workload.category"        = "cpu"
    "org.cloudai.workload.task-type"       = "cpu-heavy"
    "org.cloudai.workload.launcher"        = "cpu_process_1.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "180"
    "org.cloudai.duration.max-seconds"     = "900"
    "org.cloudai.primary-metric"           = "linalg_gflops (GFLOP/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("cpu-1")
  cache-to   = cache_to("cpu-1")
}

target "cpu-2" {
  inherits   = ["_common"]
  dockerfile = "images/cpu-2/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("cpu", "2")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-cpu-intensive:2"
    "org.opencontainers.image.description" = "cpu-2: Prime number generation and factorization. Sieves, primality tests, factorization of semiprimes and random numbers, and prime-gap statistics."
    "org.cloudai.workload.id"              = "cpu-2"
    "org.cloudai.workload.category"        = "cpu"
    "org.cloudai.workload.task-type"       = "cpu-heavy"
    "org.cloudai.workload.launcher"        = "cpu_process_2.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "512m"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "180"
    "org.cloudai.duration.max-seconds"     = "900"
    "org.cloudai.primary-metric"           = "primes_per_s (primes/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("cpu-2")
  cache-to   = cache_to("cpu-2")
}

target "cpu-3" {
  inherits   = ["_common"]
  dockerfile = "images/cpu-3/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("cpu", "3")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-cpu-intensive:3"
    "org.opencontainers.image.description" = "cpu-3: Sorting algorithms benchmark. Several sorting algorithms on random, nearly sorted, reversed and few-distinct inputs."
    "org.cloudai.workload.id"              = "cpu-3"
    "org.cloudai.workload.category"        = "cpu"
    "org.cloudai.workload.task-type"       = "cpu-heavy"
    "org.cloudai.workload.launcher"        = "cpu_process_3.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "180"
    "org.cloudai.duration.max-seconds"     = "900"
    "org.cloudai.primary-metric"           = "elements_sorted_per_s (elements/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("cpu-3")
  cache-to   = cache_to("cpu-3")
}

target "cpu-4" {
  inherits   = ["_common"]
  dockerfile = "images/cpu-4/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("cpu", "4")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-cpu-intensive:4"
    "org.opencontainers.image.description" = "cpu-4: Cryptographic hashing and string processing. Many digests (md5 to sha3, blake2), HMAC, hash chains and iterated password hashing."
    "org.cloudai.workload.id"              = "cpu-4"
    "org.cloudai.workload.category"        = "cpu"
    "org.cloudai.workload.task-type"       = "cpu-heavy"
    "org.cloudai.workload.launcher"        = "cpu_process_4.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "512m"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "180"
    "org.cloudai.duration.max-seconds"     = "900"
    "org.cloudai.primary-metric"           = "hashed_mb_s (MB/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("cpu-4")
  cache-to   = cache_to("cpu-4")
}

target "cpu-5" {
  inherits   = ["_common"]
  dockerfile = "images/cpu-5/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("cpu", "5")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-cpu-intensive:5"
    "org.opencontainers.image.description" = "cpu-5: Monte Carlo simulations. Pi estimation, random walks, numerical integration and coin-flip trials, checked against their statistical error bounds."
    "org.cloudai.workload.id"              = "cpu-5"
    "org.cloudai.workload.category"        = "cpu"
    "org.cloudai.workload.task-type"       = "cpu-heavy"
    "org.cloudai.workload.launcher"        = "cpu_process_5.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "512m"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "180"
    "org.cloudai.duration.max-seconds"     = "900"
    "org.cloudai.primary-metric"           = "samples_per_s (samples/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("cpu-5")
  cache-to   = cache_to("cpu-5")
}

target "cpu-6" {
  inherits   = ["_common"]
  dockerfile = "images/cpu-6/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("cpu", "6")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-cpu-intensive:6"
    "org.opencontainers.image.description" = "cpu-6: Recursive algorithms and tree traversal. Memoised recursion, Ackermann, Tower of Hanoi, and random binary trees with traversals."
    "org.cloudai.workload.id"              = "cpu-6"
    "org.cloudai.workload.category"        = "cpu"
    "org.cloudai.workload.task-type"       = "cpu-heavy"
    "org.cloudai.workload.launcher"        = "cpu_process_6.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "180"
    "org.cloudai.duration.max-seconds"     = "900"
    "org.cloudai.primary-metric"           = "nodes_visited_per_s (nodes/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("cpu-6")
  cache-to   = cache_to("cpu-6")
}

target "cpu-7" {
  inherits   = ["_common"]
  dockerfile = "images/cpu-7/Dockerfile"
  contexts = {
    base = "target:base"
  }
  platforms = platforms(["linux/amd64", "linux/arm64"])
  tags = concat(
    tags("cpu", "7")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-cpu-intensive:7"
    "org.opencontainers.image.description" = "cpu-7: Compression algorithms and data encoding. zlib at several levels, bz2, lzma, base64 and hex round trips, and streaming compression over data of varied compressibility."
    "org.cloudai.workload.id"              = "cpu-7"
    "org.cloudai.workload.category"        = "cpu"
    "org.cloudai.workload.task-type"       = "cpu-heavy"
    "org.cloudai.workload.launcher"        = "cpu_process_7.py"
    "org.cloudai.envelope.cpus"            = "2"
    "org.cloudai.envelope.memory"          = "1g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "0"
    "org.cloudai.envelope.gpu-memory"      = "0"
    "org.cloudai.duration.min-seconds"     = "180"
    "org.cloudai.duration.max-seconds"     = "900"
    "org.cloudai.primary-metric"           = "compress_mb_s (MB/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("cpu-7")
  cache-to   = cache_to("cpu-7")
}

target "gpu-1" {
  inherits   = ["_common"]
  dockerfile = "images/gpu-1/Dockerfile"
  contexts = {
    base = "target:base-gpu"
  }
  platforms = platforms(["linux/amd64"])
  tags = concat(
    tags("gpu", "1"),
    tags("gpu", "latest")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-gpu-intensive:1"
    "org.opencontainers.image.description" = "gpu-1: Neural network training with dynamic batch sizes (CNN). Trains a small CNN on synthetic images with a batch size that changes over the run, then runs inference batches."
    "org.cloudai.workload.id"              = "gpu-1"
    "org.cloudai.workload.category"        = "gpu"
    "org.cloudai.workload.task-type"       = "gpu-training"
    "org.cloudai.workload.launcher"        = "gpu_process_1.py"
    "org.cloudai.envelope.cpus"            = "4"
    "org.cloudai.envelope.memory"          = "8g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "1"
    "org.cloudai.envelope.gpu-memory"      = "8g"
    "org.cloudai.duration.min-seconds"     = "300"
    "org.cloudai.duration.max-seconds"     = "1200"
    "org.cloudai.primary-metric"           = "samples_per_s (samples/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("gpu-1")
  cache-to   = cache_to("gpu-1")
}

target "gpu-2" {
  inherits   = ["_common"]
  dockerfile = "images/gpu-2/Dockerfile"
  contexts = {
    base = "target:base-gpu"
  }
  platforms = platforms(["linux/amd64"])
  tags = concat(
    tags("gpu", "2")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-gpu-intensive:2"
    "org.opencontainers.image.description" = "gpu-2: Large matrix operations. Matrix products of growing size, symmetric eigenvalues, SVD, batched products and element-wise math."
    "org.cloudai.workload.id"              = "gpu-2"
    "org.cloudai.workload.category"        = "gpu"
    "org.cloudai.workload.task-type"       = "gpu-inference"
    "org.cloudai.workload.launcher"        = "gpu_process_2.py"
    "org.cloudai.envelope.cpus"            = "4"
    "org.cloudai.envelope.memory"          = "8g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "1"
    "org.cloudai.envelope.gpu-memory"      = "16g"
    "org.cloudai.duration.min-seconds"     = "300"
    "org.cloudai.duration.max-seconds"     = "1200"
    "org.cloudai.primary-metric"           = "matrix_product_tflops (TFLOP/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("gpu-2")
  cache-to   = cache_to("gpu-2")
}

target "gpu-3" {
  inherits   = ["_common"]
  dockerfile = "images/gpu-3/Dockerfile"
  contexts = {
    base = "target:base-gpu"
  }
  platforms = platforms(["linux/amd64"])
  tags = concat(
    tags("gpu", "3")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-gpu-intensive:3"
    "org.opencontainers.image.description" = "gpu-3: Image processing and convolutions. Convolutions with several kernel sizes, pooling, normalisation, activations, transposed convolutions and small pipelines."
    "org.cloudai.workload.id"              = "gpu-3"
    "org.cloudai.workload.category"        = "gpu"
    "org.cloudai.workload.task-type"       = "gpu-inference"
    "org.cloudai.workload.launcher"        = "gpu_process_3.py"
    "org.cloudai.envelope.cpus"            = "4"
    "org.cloudai.envelope.memory"          = "8g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "1"
    "org.cloudai.envelope.gpu-memory"      = "8g"
    "org.cloudai.duration.min-seconds"     = "300"
    "org.cloudai.duration.max-seconds"     = "1200"
    "org.cloudai.primary-metric"           = "images_per_s (images/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("gpu-3")
  cache-to   = cache_to("gpu-3")
}

target "gpu-4" {
  inherits   = ["_common"]
  dockerfile = "images/gpu-4/Dockerfile"
  contexts = {
    base = "target:base-gpu"
  }
  platforms = platforms(["linux/amd64"])
  tags = concat(
    tags("gpu", "4")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-gpu-intensive:4"
    "org.opencontainers.image.description" = "gpu-4: Recurrent network with LSTMs. Trains a multi-layer LSTM on sequences of varying length, plus bidirectional LSTM and GRU inference."
    "org.cloudai.workload.id"              = "gpu-4"
    "org.cloudai.workload.category"        = "gpu"
    "org.cloudai.workload.task-type"       = "gpu-training"
    "org.cloudai.workload.launcher"        = "gpu_process_4.py"
    "org.cloudai.envelope.cpus"            = "4"
    "org.cloudai.envelope.memory"          = "8g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "1"
    "org.cloudai.envelope.gpu-memory"      = "16g"
    "org.cloudai.duration.min-seconds"     = "300"
    "org.cloudai.duration.max-seconds"     = "1200"
    "org.cloudai.primary-metric"           = "tokens_per_s (tokens/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("gpu-4")
  cache-to   = cache_to("gpu-4")
}

target "gpu-5" {
  inherits   = ["_common"]
  dockerfile = "images/gpu-5/Dockerfile"
  contexts = {
    base = "target:base-gpu"
  }
  platforms = platforms(["linux/amd64"])
  tags = concat(
    tags("gpu", "5")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-gpu-intensive:5"
    "org.opencontainers.image.description" = "gpu-5: Transformer models and attention. Trains a transformer encoder on synthetic tokens, with self- and cross-attention and scaled dot-product attention."
    "org.cloudai.workload.id"              = "gpu-5"
    "org.cloudai.workload.category"        = "gpu"
    "org.cloudai.workload.task-type"       = "gpu-training"
    "org.cloudai.workload.launcher"        = "gpu_process_5.py"
    "org.cloudai.envelope.cpus"            = "4"
    "org.cloudai.envelope.memory"          = "8g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "1"
    "org.cloudai.envelope.gpu-memory"      = "16g"
    "org.cloudai.duration.min-seconds"     = "300"
    "org.cloudai.duration.max-seconds"     = "1200"
    "org.cloudai.primary-metric"           = "tokens_per_s (tokens/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("gpu-5")
  cache-to   = cache_to("gpu-5")
}

target "gpu-6" {
  inherits   = ["_common"]
  dockerfile = "images/gpu-6/Dockerfile"
  contexts = {
    base = "target:base-gpu"
  }
  platforms = platforms(["linux/amd64"])
  tags = concat(
    tags("gpu", "6")
  )
  labels = {
    "org.opencontainers.image.title"       = "cloudai-gpu-intensive:6"
    "org.opencontainers.image.description" = "gpu-6: Generative models: variational autoencoder. Trains a VAE with reconstruction and KL loss, then samples, interpolates and tests reconstructions."
    "org.cloudai.workload.id"              = "gpu-6"
    "org.cloudai.workload.category"        = "gpu"
    "org.cloudai.workload.task-type"       = "gpu-training"
    "org.cloudai.workload.launcher"        = "gpu_process_6.py"
    "org.cloudai.envelope.cpus"            = "4"
    "org.cloudai.envelope.memory"          = "8g"
    "org.cloudai.envelope.disk"            = "0"
    "org.cloudai.envelope.gpus"            = "1"
    "org.cloudai.envelope.gpu-memory"      = "8g"
    "org.cloudai.duration.min-seconds"     = "300"
    "org.cloudai.duration.max-seconds"     = "1200"
    "org.cloudai.primary-metric"           = "samples_per_s (samples/s)"
    "org.cloudai.metrics.port"             = "9464"
    "org.cloudai.metrics.path"             = "/metrics"
  }
  cache-from = cache_from("gpu-6")
  cache-to   = cache_to("gpu-6")
}
