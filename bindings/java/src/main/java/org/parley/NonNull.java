package org.parley;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * The annotated value is never null: a parameter the binding refuses null for (it throws
 * {@link NullPointerException}), a return value or field that is always set.
 *
 * <p>The binding's own annotation, so that {@code parley.jar} depends on nothing: tools that
 * match nullability annotations by simple name (Android Lint, IntelliJ's configurable
 * annotations, NullAway, the Checker Framework's aliases) can be told about {@code
 * org.parley.NonNull} and {@link Nullable}. Kept in class files, not at run time.
 */
@Documented
@Retention(RetentionPolicy.CLASS)
@Target({
  ElementType.METHOD,
  ElementType.PARAMETER,
  ElementType.FIELD,
  ElementType.LOCAL_VARIABLE,
  ElementType.TYPE_USE
})
public @interface NonNull {}
