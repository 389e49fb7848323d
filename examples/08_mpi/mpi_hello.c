/* mpi_hello.c - an MPI program (C, built with MPICH's mpicc) for dragonx process groups with
 * pmi = pmi1: each rank prints where it runs, then the ranks sum rank + 1 with MPI_Allreduce
 * and check the result, size * (size + 1) / 2.
 *
 *   mpi_hello                      exits 0, or 1 if the sum is wrong
 *   mpi_hello --exit-code R C      rank R exits with code C after MPI_Finalize
 *   mpi_hello --exit-early R C     rank R exits with code C before MPI_Init: the other ranks
 *                                  are left waiting for it in MPI_Init (in a PMI barrier)
 *   mpi_hello --abort R C          rank R calls MPI_Abort with code C after MPI_Init: the
 *                                  other ranks are left waiting for it in MPI_Allreduce
 *
 * The host is the dragonx node's name (DRAGONX_HOSTNAME), or the host name outside dragonx.
 * Each rank prints one line of space-separated fields, for people and for tests:
 *   mpi_hello rank=1 size=4 host=node1 node=1 local_rank=0 local_size=2 puid=... sum=10 ok=1
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char* env_or(const char* name, const char* fallback)
{
    const char* v = getenv(name);
    return v != NULL ? v : fallback;
}

int main(int argc, char** argv)
{
    /* --exit-code / --exit-early / --abort R C: which rank leaves, how, with which code. */
    int leave_rank = -1;
    int leave_code = 0;
    int early = 0;
    int abort = 0;
    if (argc == 4 && (strcmp(argv[1], "--exit-code") == 0 ||
                      strcmp(argv[1], "--exit-early") == 0 || strcmp(argv[1], "--abort") == 0)) {
        early = strcmp(argv[1], "--exit-early") == 0;
        abort = strcmp(argv[1], "--abort") == 0;
        leave_rank = atoi(argv[2]);
        leave_code = atoi(argv[3]);
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--exit-code|--exit-early|--abort RANK CODE]\n", argv[0]);
        return 2;
    }
    /* Before MPI_Init, the rank is only known from the environment the launcher gave. */
    if (early && atoi(env_or("PMI_RANK", "-1")) == leave_rank) {
        fprintf(stderr, "mpi_hello: rank %d leaving before MPI_Init with code %d\n",
                leave_rank, leave_code);
        return leave_code;
    }

    MPI_Init(&argc, &argv);
    int rank = 0;
    int size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    char host[256];
    const char* node_name = getenv("DRAGONX_HOSTNAME");
    if (node_name != NULL) {
        snprintf(host, sizeof host, "%s", node_name);
    } else if (gethostname(host, sizeof host) != 0) {
        snprintf(host, sizeof host, "unknown");
    }

    if (abort && rank == leave_rank) {
        printf("mpi_hello abort rank=%d puid=%s code=%d\n", rank, env_or("DRAGONX_PUID", "-"),
               leave_code);
        fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, leave_code);
    }

    long mine = rank + 1;
    long sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    const long expected = (long)size * (size + 1) / 2;
    const int ok = sum == expected;

    printf("mpi_hello rank=%d size=%d host=%s node=%s local_rank=%s local_size=%s puid=%s "
           "sum=%ld ok=%d\n",
           rank, size, host, env_or("DRAGONX_NODE", "-"), env_or("MPI_LOCALRANKID", "-"),
           env_or("MPI_LOCALNRANKS", "-"), env_or("DRAGONX_PUID", "-"), sum, ok);
    fflush(stdout);
    if (!ok) {
        fprintf(stderr, "mpi_hello: rank %d: MPI_Allreduce gave %ld, expected %ld\n", rank, sum,
                expected);
    }
    MPI_Finalize();
    if (rank == leave_rank && !early && !abort) {
        return leave_code;
    }
    return ok ? 0 : 1;
}
