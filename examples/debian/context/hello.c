#include <stdio.h>

#include "greet.h"

int main(void) {
  printf("%s from Debian, built by gcc %s\n", greeting(), __VERSION__);
  return 0;
}
